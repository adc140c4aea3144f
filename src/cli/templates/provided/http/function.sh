# {{name}}: an HTTP function (API Gateway HTTP API, payload format 2.0) for the `provided`
# runtime, run by ./bootstrap.
#
# handler: the event JSON arrives on stdin (its file path is $1); print the response JSON on
# stdout and log lines on stderr; a non-zero status reports an error.
# The name comes from event.name (direct invoke, {"name": "Mundo"}), else from the JSON body
# (base64 when isBase64Encoded), else from ?name=, else World.
# JSON is picked apart with sed here, enough for this example; for real work, ship a static jq
# binary with the function.

handler() {
	event=$(tr '\n\r\t' '   ')
	name=
	case $event in
	*'"requestContext"'*) ;; # an HTTP event: its only names are in the body or the query
	*) name=$(printf '%s\n' "$event" | json_field name) ;;
	esac
	if [ -z "$name" ]; then
		body=$(printf '%s\n' "$event" | json_field body)
		if printf '%s\n' "$event" | grep -Eq '"isBase64Encoded"[[:space:]]*:[[:space:]]*true'; then
			body=$(printf '%s\n' "$body" | base64 -d 2>/dev/null | tr '\n\r\t' '   ')
		else
			body=$(printf '%s\n' "$body" | json_unescape)
		fi
		name=$(printf '%s\n' "$body" | json_field name)
	fi
	if [ -z "$name" ]; then
		name=$(printf '%s\n' "$event" |
			sed -n -E 's/.*"queryStringParameters"[[:space:]]*:[[:space:]]*\{([^}]*)\}.*/\1/p' |
			json_field name)
	fi
	[ -n "$name" ] || name=World
	echo "greeting $name" >&2

	message=$(printf '{"message":"%s, %s!"}' "$(json_text "${GREETING:-Hola}")" "$name")
	printf '{"statusCode":200,"headers":{"content-type":"application/json"},"body":"%s"}\n' \
		"$(json_text "$message")"
}

# json_field KEY: the value of the string field KEY (last one seen) in the one-line JSON on
# stdin, still JSON-escaped, so it can be put back into a JSON string as it is.
json_field() {
	sed -n -E "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"(([^\"\\\\]|\\\\.)*)\".*/\1/p"
}

# json_unescape: the inside of a JSON string on stdin, one level of escaping removed (enough
# to read the JSON document it holds).
json_unescape() {
	soh=$(printf '\001')
	sed -e "s/\\\\\\\\/$soh/g" -e 's/\\"/"/g' -e 's/\\[nrt]/ /g' -e 's/\\\//\//g' -e "s/$soh/\\\\/g"
}

# json_text TEXT: TEXT escaped for the inside of a JSON string.
json_text() {
	printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'
}
