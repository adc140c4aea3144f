# {{name}}: a shell function for the `provided` runtime, run by ./bootstrap.
#
# handler: the event JSON arrives on stdin (its file path is $1); print the response JSON on
# stdout and log lines on stderr; a non-zero status reports an error.
# JSON is picked apart with sed here, enough for {"name": "..."}; for real work, ship a static
# jq binary with the function.

handler() {
	name=$(tr '\n\r\t' '   ' | json_field name)
	[ -n "$name" ] || name=World
	echo "greeting $name" >&2
	printf '{"message":"%s, %s!"}\n' "$(json_text "${GREETING:-Hola}")" "$name"
}

# json_field KEY: the value of the string field KEY (last one seen) in the one-line JSON on
# stdin, still JSON-escaped, so it can be put back into a JSON string as it is.
json_field() {
	sed -n -E "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"(([^\"\\\\]|\\\\.)*)\".*/\1/p"
}

# json_text TEXT: TEXT escaped for the inside of a JSON string.
json_text() {
	printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'
}
