"""holactl's Python runtime: the Lambda Runtime API (2018-06-01) loop around `handler(event, context)`.

Started as `python3.11 -s bootstrap.py` in a clean environment (AWS_LAMBDA_RUNTIME_API, _HANDLER,
LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_* ...). It behaves like AWS's own Python runtime
(awslambdaric): the same context object, error bodies, `Runtime.*` error types, stack-trace format
and root-logger format, so code written for Lambda runs unchanged.

Startup cost matters (every cold start pays it), so this file imports only modules that are
builtin or nearly free: `json`, `socket`, `http.client`, `logging` and `traceback` each cost
several milliseconds (`re`, `enum`, `email`) and are avoided or imported lazily:
- HTTP/1.1 is spoken over `_socket` on one keep-alive connection (reconnected once if it drops);
- JSON goes through the C accelerator `_json` (the stdlib `json` module is only imported to
  produce its exact error message when an event does not parse);
- when user code imports `logging`, a meta-path hook installs AWS's root handler right after the
  module loads (the same format as on Lambda); code that never logs never pays for it.
A script is compiled on every start (~9 ms for this file); its compiled form runs as well:
`python3.11 -c "import py_compile; py_compile.compile('bootstrap.py', cfile='bootstrap.pyc')"`
then `python3.11 -s bootstrap.pyc` (a .pyc is specific to one Python minor version and is not
checked against the source: rebuild it whenever this file changes).
"""

import os
import sys
import time

import _json
import _socket

_API_PREFIX = "/2018-06-01/runtime"
_UA = "holactl-python/%d.%d.%d" % sys.version_info[:3]
_request_id = None  # current invocation, read by the logging filter


class _Fault(Exception):
    """A runtime-level failure with a `Runtime.*` error type (as awslambdaric's FaultException)."""

    def __init__(self, error_type, msg, trace=None):
        self.error_type = error_type
        self.msg = msg
        self.trace = trace


# ---------------------------------------------------------------------------------------------
# Runtime API client: HTTP/1.1 on one persistent connection.


class _RuntimeApi:
    def __init__(self, address):
        host, _, port = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.host_header = address
        self.sock = None
        self.buf = b""
        # One receive buffer for the life of the runtime: `recv(n)` would allocate n bytes per
        # call, and above glibc's mmap threshold that is an mmap/munmap pair per read.
        self.rbuf = bytearray(65536)
        self.rview = memoryview(self.rbuf)
        # The `next` request never changes: built once.
        self.next_request = self._head("GET", _API_PREFIX + "/invocation/next", "", None)

    def _addresses(self):
        # A numeric address skips getaddrinfo, whose first call costs ~13 ms (glibc loads its
        # NSS modules and configuration).
        for family in (_socket.AF_INET, _socket.AF_INET6):
            try:
                _socket.inet_pton(family, self.host)
            except OSError:
                continue
            return [(family, _socket.SOCK_STREAM, 0, "", (self.host, self.port))]
        return _socket.getaddrinfo(self.host, self.port, 0, _socket.SOCK_STREAM)

    def _connect(self):
        error = OSError("cannot resolve %s" % self.host_header)
        for family, kind, proto, _, addr in self._addresses():
            sock = _socket.socket(family, kind, proto)
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(addr)
            except OSError as e:
                sock.close()
                error = e
                continue
            self.sock = sock
            self.buf = b""
            return
        raise error

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b""

    def _head(self, method, path, headers, length):
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n%s" % (
            method,
            path,
            self.host_header,
            _UA,
            headers,
        )
        if length is not None:
            head += "Content-Length: %d\r\n" % length
        return (head + "\r\n").encode("latin-1")

    def next(self):
        """`GET …/invocation/next`: (status, lower-cased headers, body)."""
        return self._send(self.next_request, b"")

    def call(self, method, path, body=b"", headers=""):
        """Send one request; return (status, lower-cased headers, body)."""
        head = self._head(method, path, headers, None if method == "GET" else len(body))
        if len(body) <= 65536:  # one send (one segment with TCP_NODELAY) for small bodies
            head, body = head + body, b""
        return self._send(head, body)

    def _send(self, head, body):
        # Retries once on a dropped connection (the server may close an idle keep-alive
        # connection at any time).
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(head)
                if body:
                    self.sock.sendall(body)
                return self._read_response()
            except OSError:
                self._close()
                if attempt:
                    raise

    def _recv(self):
        n = self.sock.recv_into(self.rbuf)
        if not n:
            raise ConnectionError("runtime API closed the connection")
        return bytes(self.rview[:n])

    def _read_response(self):
        while True:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                buf += self._recv()
                end = buf.find(b"\r\n\r\n")
            lines = buf[:end].decode("latin-1").split("\r\n")
            self.buf = buf[end + 4 :]
            status = int(lines[0].split(None, 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name in headers:
                    headers[name] += ", " + value.strip()
                else:
                    headers[name] = value.strip()
            if status >= 200 or status == 101:
                break  # 1xx interim answers are skipped
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif status in (204, 304):
            body = b""
        else:  # delimited by the end of the connection
            chunks = [self.buf]
            try:
                while True:
                    chunks.append(self._recv())
            except ConnectionError:
                pass
            body = b"".join(chunks)
            self._close()
        if headers.get("connection", "").lower() == "close":
            self._close()
        return status, headers, body

    def _read_exact(self, n):
        buf = self.buf
        if len(buf) >= n:
            self.buf = buf[n:]
            return buf[:n]
        out = bytearray(n)
        view = memoryview(out)
        got = len(buf)
        view[:got] = buf
        self.buf = b""
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise ConnectionError("runtime API closed the connection")
            got += k
        return bytes(out)

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self.buf += self._recv()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self._read_line().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            self._read_exact(2)


def _quote(s):
    """Percent-encode a request id for the URL path (ids are normally UUIDs: a no-op)."""
    if s.isascii() and s.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return s
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.~") else "".join("%%%02X" % b for b in c.encode())
        for c in s
    )


# ---------------------------------------------------------------------------------------------
# JSON through the C accelerator. Output matches awslambdaric: separators ", " and ": ",
# NaN/Infinity allowed, decimal.Decimal written as a number, non-ASCII written as UTF-8.


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        return float(name)  # "NaN", "Infinity", "-Infinity"


_scan = _json.make_scanner(_ScanContext())
_WHITESPACE = " \t\n\r"


def _json_loads(data):
    try:
        s = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        start = len(s) - len(s.lstrip(_WHITESPACE))
        value, end = _scan(s, start)
        if end == len(s.rstrip(_WHITESPACE)):
            return value
    except Exception:
        pass
    import json  # slow path: exact stdlib semantics and error messages

    return json.loads(data)


def _json_default(o):
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(o, decimal.Decimal):
        if o.is_nan():
            return float("nan")
        if o.is_infinite() or o != o.to_integral_value():
            return float(o)
        return int(o)
    raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)


def _json_dumps(o, ascii_only=False):
    encode_str = _json.encode_basestring_ascii if ascii_only else _json.encode_basestring
    if isinstance(o, str):
        return encode_str(o)
    encoder = _json.make_encoder({}, _json_default, encode_str, None, ": ", ", ", False, False, True)
    return "".join(encoder(o, 0))


def _to_json_bytes(o):
    try:
        return _json_dumps(o).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \\u escapes
        return _json_dumps(o, ascii_only=True).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Logging: AWS's root handler, installed when (and only if) user code imports `logging`.


class _LoggingHook:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(cls)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_setup(module):
            exec_module(module)
            try:
                _setup_logging(module)
            except Exception as e:  # never break the user's import
                sys.stderr.write("holactl bootstrap: logging setup failed: %r\n" % (e,))

        spec.loader.exec_module = exec_and_setup
        return spec


def _setup_logging(logging):
    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                sys.stdout.write(self.format(record))
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _request_id or ""
            return True

    logging.Formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    level = (os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    if level in ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL"):
        root.setLevel({"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level))
    root.addHandler(handler)


# ---------------------------------------------------------------------------------------------
# The context object, as awslambdaric's LambdaContext.


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (f, getattr(self, f)) for f in self.__slots__)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field) if isinstance(d, dict) else None)
    return obj


def _parse_json_header(value, name):
    try:
        return _json_loads(value)
    except Exception as e:
        raise _Fault(
            "Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON: %s" % (name, e)
        )


def _context_env():
    """The context's fields taken from the environment (read per invocation, as on AWS)."""
    get = os.environ.get
    return (
        get("AWS_LAMBDA_LOG_GROUP_NAME"),
        get("AWS_LAMBDA_LOG_STREAM_NAME"),
        get("AWS_LAMBDA_FUNCTION_NAME"),
        get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),  # a str, as on AWS
        get("AWS_LAMBDA_FUNCTION_VERSION"),
    )


class LambdaContext(object):
    def __init__(
        self, invoke_id, client_context, cognito_identity, deadline_ms, invoked_function_arn, tenant_id=None, env=None
    ):
        self.aws_request_id = invoke_id
        (
            self.log_group_name,
            self.log_stream_name,
            self.function_name,
            self.memory_limit_in_mb,
            self.function_version,
        ) = (env or _context_env())
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        self.identity = identity = CognitoIdentity()
        if isinstance(cognito_identity, dict):
            identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        else:
            identity.cognito_identity_id = identity.cognito_identity_pool_id = None
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s,tenant_id=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


# ---------------------------------------------------------------------------------------------
# Errors, shaped and printed as awslambdaric does.


def _make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _error_from_exception(exc, request_id=None):
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    # Drop the runtime's own frames (and the import machinery's) in front of the user's code.
    while frames and (frames[0][0].endswith("/bootstrap.py") or frames[0][0].startswith("<frozen importlib")):
        frames.pop(0)
    return _make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _log_error(error):
    """`[ERROR] Type: message` and the traceback, as AWS prints it (one line per line here,
    where AWS joins them with \\r to keep one CloudWatch event)."""
    line = "[ERROR]"
    if error.get("errorType"):
        line += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            line += ":"
        line += " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or ():
        lines.extend(element.splitlines() if element else [""])
    try:
        sys.stderr.write("\n".join(lines) + "\n")
    except Exception:
        pass


def _flush():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Init and the invoke loop.


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler, e))
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise _Fault(
                "Runtime.BuiltInModuleConflict",
                "Cannot use built-in module %s as a handler module" % modname,
            )
        name = modname.replace("/", ".")
        __import__(name)
        module = sys.modules[name]
    except ImportError as e:
        raise _Fault("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise _Fault(
            "Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, e), trace
        )
    try:
        return getattr(module, fname)
    except AttributeError:
        raise _Fault("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))


def _unmarshal(body, content_type):
    if (
        content_type
        and content_type != "application/json"
        and content_type.split(";", 1)[0].strip().lower() != "application/json"
    ):
        return body  # raw bytes, as awslambdaric does for non-JSON payloads
    try:
        return _json_loads(body)
    except Exception as e:
        raise _Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)


def _marshal(result):
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return _to_json_bytes(result), "application/json"
    except Exception as e:
        raise _Fault("Runtime.MarshalError", "Unable to marshal response: %s" % e)


def _post(api, path, body, headers):
    """POST a result; a failure here is reported but does not end the runtime."""
    try:
        status, _, answer = api.call("POST", path, body, headers)
    except OSError as e:
        sys.stderr.write("holactl bootstrap: POST %s failed: %s\n" % (path, e))
        return None
    if not 200 <= status < 300:
        sys.stderr.write(
            "holactl bootstrap: POST %s answered %d: %s\n" % (path, status, answer[:512].decode("utf-8", "replace"))
        )
    return status


def _init_error(api, error):
    _log_error(error)
    _flush()
    if api is not None:
        _post(
            api,
            _API_PREFIX + "/init/error",
            _to_json_bytes(error),
            "Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: %s\r\n"
            % error["errorType"],
        )
    sys.exit(1)


def _main():
    global _request_id
    env = os.environ
    for stream in (sys.stdout, sys.stderr):  # flush at each line, so logs stream as on AWS
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass

    address = env.get("AWS_LAMBDA_RUNTIME_API")
    api = _RuntimeApi(address) if address else None
    if api is None:
        _init_error(None, _make_error("AWS_LAMBDA_RUNTIME_API is not set", "Runtime.InvalidEnvironment", []))

    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    if task_root in sys.path:
        sys.path.remove(task_root)
    sys.path.insert(0, task_root)
    if "logging" in sys.modules:
        _setup_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingHook)

    try:
        handler = _get_handler(env.get("_HANDLER", ""))
    except _Fault as f:
        _init_error(api, _make_error(f.msg, f.error_type, f.trace))
    except Exception as e:
        _init_error(api, _error_from_exception(e))

    while True:
        # Work that does not depend on the event is done before asking for it: once `next`
        # answers, the clock of the invocation is running.
        context_env = _context_env()
        try:
            status, headers, body = api.next()
        except OSError as e:
            sys.stderr.write("holactl bootstrap: runtime API unreachable: %s\n" % e)
            _flush()
            sys.exit(1)
        if status != 200:
            sys.stderr.write("holactl bootstrap: invocation/next answered %d\n" % status)
            _flush()
            sys.exit(1)

        request_id = headers.get("lambda-runtime-aws-request-id", "")
        _request_id = request_id
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            env["_X_AMZN_TRACE_ID"] = trace_id
        elif "_X_AMZN_TRACE_ID" in env:
            del env["_X_AMZN_TRACE_ID"]
        # The invocation's scoped token for the platform's internal API (/hola/v1/...): in the
        # context and, for this invocation only, in $HOLA_TOKEN.
        hola_token = headers.get("lambda-runtime-hola-token")
        if hola_token:
            env["HOLA_TOKEN"] = hola_token
        path = _API_PREFIX + "/invocation/" + _quote(request_id)

        error = None
        try:
            client_context = headers.get("lambda-runtime-client-context")
            cognito_identity = headers.get("lambda-runtime-cognito-identity")
            try:
                deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
            except ValueError:
                deadline_ms = 0
            context = LambdaContext(
                request_id,
                _parse_json_header(client_context, "Client Context") if client_context else None,
                _parse_json_header(cognito_identity, "Cognito Identity") if cognito_identity else None,
                deadline_ms,
                headers.get("lambda-runtime-invoked-function-arn"),
                headers.get("lambda-runtime-aws-tenant-id"),
                context_env,
            )
            context.hola_token = hola_token
            event = _unmarshal(body, headers.get("content-type"))
            result, content_type = _marshal(handler(event, context))
        except _Fault as f:
            error, error_kind = _make_error(f.msg, f.error_type, f.trace, request_id), f.error_type
        except Exception as e:
            error, error_kind = _error_from_exception(e, request_id), "Unhandled"
        body = event = context = None  # let the event be freed while we wait for the next one
        if hola_token:
            env.pop("HOLA_TOKEN", None)

        if error is None:
            _flush()
            _post(api, path + "/response", result, "Content-Type: %s\r\n" % content_type)
            result = None
        else:
            _log_error(error)
            _flush()
            _post(
                api,
                path + "/error",
                _to_json_bytes(error),
                "Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: %s\r\n" % error_kind,
            )


if __name__ == "__main__":
    _main()
