// holactl's Node.js runtime: the Lambda Runtime API (2018-06-01) loop around `handler(event, context)`.
//
// Started as `node bootstrap.cjs` in a clean environment (AWS_LAMBDA_RUNTIME_API, _HANDLER,
// LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_* ...). It behaves like AWS's Node.js runtime
// (aws-lambda-nodejs-runtime-interface-client) so code written for Lambda runs unchanged:
// - the handler is found the same way: `dir/file.export.nested`, CommonJS loaded with require
//   (extensionless, `.js` unless the nearest package.json says "type":"module", `.cjs`), ES
//   modules with import() (`.mjs`, or `.js` under "type":"module"), then node_modules resolution;
// - async handlers, promise-returning handlers and `(event, context, callback)` handlers, with
//   `context.callbackWaitsForEmptyEventLoop` honoured (a callback result is sent once the event
//   loop is empty, unless the flag is set to false), and the legacy done/succeed/fail;
//   unlike AWS, a plain function that returns a value (not a promise) answers with that value;
// - console.* prefixed with `ISO-time\trequestId\tLEVEL\t`, filtered by AWS_LAMBDA_LOG_LEVEL;
// - error bodies `{errorType, errorMessage, trace}` (plus `stackTrace`, the key our platform
//   and the Python runtime use), `Runtime.*` types for loader failures, and an uncaught
//   exception or unhandled rejection reports the error then ends the process (exit 129 / 128).
// Node built-ins only; one keep-alive connection to the Runtime API (HTTP/1.1 over node:net,
// see RuntimeApi).
//
// Every cold start pays for this file's loading, so it is CommonJS: an ES module entry point
// costs ~5 ms more here (the ESM loader starts, and each built-in gets an ESM facade), and ES
// module handlers are loaded with require() where Node supports it (20.19+, no top-level await),
// ~4 ms less than import(), which stays the fallback.

'use strict';

const { existsSync, readFileSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { format, types } = require('node:util');

const API = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');
const USER_AGENT = `holactl-node/${process.versions.node}`;

// ---------------------------------------------------------------------------------------------
// Logging: console.* as on Lambda.

let currentRequestId; // `undefined` outside an invocation, as on AWS

function patchConsole() {
  const levels = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
  const min = levels[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? levels.TRACE;
  const nop = () => {};
  const make = (level, stream) =>
    levels[level] >= min
      ? (message, ...params) => {
          stream.write(
            `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${format(message, ...params)}\n`,
          );
        }
      : nop;
  console.trace = make('TRACE', process.stdout);
  console.debug = make('DEBUG', process.stdout);
  console.info = make('INFO', process.stdout);
  console.log = console.info;
  console.warn = make('WARN', process.stderr);
  console.error = make('ERROR', process.stderr);
  console.fatal = make('FATAL', process.stderr);
}

function setRequestId(id) {
  currentRequestId = id;
  globalThis[REQUEST_ID_SYMBOL] = id;
}

// ---------------------------------------------------------------------------------------------
// Errors, shaped as AWS's Errors.js.

class RuntimeError extends Error {}
const runtimeError = (name) => {
  const cls = class extends RuntimeError {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
};
const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const NodeJsExit = runtimeError('NodeJsExit');
class UnhandledPromiseRejection extends RuntimeError {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function isErrorLike(e) {
  return (
    e &&
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    typeof e.stack === 'string' &&
    e.name &&
    e.message &&
    e.stack
  );
}

/** The body posted to /error: AWS's `{errorType, errorMessage, trace}` plus `stackTrace`. */
function toRapidResponse(error) {
  try {
    if (types.isNativeError(error) || isErrorLike(error)) {
      const trace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
      return {
        errorType: error.name || error.constructor?.name || 'Error',
        errorMessage: error.message,
        trace,
        stackTrace: trace,
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [], stackTrace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      trace: [],
      stackTrace: [],
    };
  }
}

/** `\t{"errorType":…,"errorMessage":…,"stack":[…]}` as AWS logs an error. */
function toFormatted(error) {
  const withProps = (v) => {
    if (!(v instanceof Error)) return v;
    const out = Object.assign({ errorType: v.name, errorMessage: v.message, code: v.code }, v);
    if (typeof v.stack === 'string') out.stack = v.stack.split('\n');
    return out;
  };
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withProps(v));
  } catch {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function logError(label, err) {
  console.error(label, toFormatted(err instanceof Error ? err : new Error(err)));
}

// ---------------------------------------------------------------------------------------------
// Runtime API client: HTTP/1.1 on one persistent node:net socket. Hand-rolled rather than
// node:http, whose first request costs ~15 ms of lazy loading and warm-up (vs ~5 ms here), on
// every cold start. Requests are serialized; the socket is unref'd between requests so that it
// never keeps the event loop alive (callbackWaitsForEmptyEventLoop relies on that).

const HEADER_END = Buffer.from('\r\n\r\n');

class RuntimeApi {
  constructor(address) {
    const i = address.lastIndexOf(':');
    this.host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
    this.port = Number(address.slice(i + 1));
    this.hostHeader = address;
    this.sock = null;
    this.pending = null;
    this.chain = Promise.resolve();
  }

  /** One request at a time; one retry, as the server may drop an idle keep-alive connection. */
  call(method, urlPath, body, headers = {}) {
    const attempt = () => this.attempt(method, urlPath, body, headers);
    const result = this.chain.then(() => attempt().catch(attempt));
    this.chain = result.catch(() => {});
    return result;
  }

  attempt(method, urlPath, body, headers) {
    return new Promise((resolve, reject) => {
      const sock = this.sock ?? this.connect();
      this.pending = { sock, resolve, reject, buf: null, status: 0, headers: null, chunks: [], size: 0 };
      sock.ref();
      let head = `${method} ${urlPath} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nUser-Agent: ${USER_AGENT}\r\n`;
      for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
      if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
      sock.cork();
      sock.write(head + '\r\n', 'latin1');
      if (body) sock.write(body);
      sock.uncork();
    });
  }

  connect() {
    const sock = net.connect({ host: this.host, port: this.port });
    sock.setNoDelay(true);
    sock.on('data', (chunk) => this.onData(sock, chunk));
    sock.on('error', (err) => this.onEnd(sock, err));
    sock.on('close', () => this.onEnd(sock, null));
    this.sock = sock;
    return sock;
  }

  onData(sock, chunk) {
    const p = this.pending;
    if (!p || p.sock !== sock) return;
    while (!p.headers) {
      p.buf = p.buf ? Buffer.concat([p.buf, chunk]) : chunk;
      const end = p.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const lines = p.buf.toString('latin1', 0, end).split('\r\n');
      chunk = p.buf.subarray(end + 4);
      p.buf = null;
      const status = Number(lines[0].split(' ')[1]);
      if (status >= 100 && status < 200) continue; // interim answer: the real one follows
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i].indexOf(':');
        if (colon <= 0) continue;
        const name = lines[i].slice(0, colon).trim().toLowerCase();
        const value = lines[i].slice(colon + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      p.status = status;
      p.headers = headers;
      if (/chunked/i.test(headers['transfer-encoding'] || '')) p.mode = 'chunked';
      else if (headers['content-length'] !== undefined) p.need = Number(headers['content-length']);
      else if (status === 204 || status === 304) p.need = 0;
      else p.mode = 'close';
    }
    if (chunk.length) {
      p.chunks.push(chunk);
      p.size += chunk.length;
    }
    if (p.mode === 'chunked') {
      const body = decodeChunked(Buffer.concat(p.chunks, p.size));
      if (body) this.finish(p, body);
    } else if (p.mode !== 'close' && p.size >= p.need) {
      this.finish(p, Buffer.concat(p.chunks, p.size).subarray(0, p.need));
    }
  }

  finish(p, body) {
    this.pending = null;
    if (/close/i.test(p.headers.connection || '')) {
      if (this.sock === p.sock) this.sock = null;
      p.sock.destroy();
    } else {
      p.sock.unref();
    }
    p.resolve({ status: p.status, headers: p.headers, body });
  }

  onEnd(sock, err) {
    if (this.sock === sock) this.sock = null;
    const p = this.pending;
    if (!p || p.sock !== sock) return;
    this.pending = null;
    sock.destroy();
    if (!err && p.mode === 'close') p.resolve({ status: p.status, headers: p.headers, body: Buffer.concat(p.chunks, p.size) });
    else p.reject(err || new Error('the runtime API closed the connection'));
  }
}

/** The body of a complete chunked message, or null while incomplete. */
function decodeChunked(buf) {
  const parts = [];
  let i = 0;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', i);
    if (lineEnd < 0) return null;
    const size = parseInt(buf.toString('latin1', i, lineEnd), 16);
    if (size === 0) {
      for (let j = lineEnd + 2; ; ) {
        const e = buf.indexOf('\r\n', j);
        if (e < 0) return null;
        if (e === j) return Buffer.concat(parts);
        j = e + 2;
      }
    }
    const start = lineEnd + 2;
    if (buf.length < start + size + 2) return null;
    parts.push(buf.subarray(start, start + size));
    i = start + size + 2;
  }
}

const api = new RuntimeApi(process.env.AWS_LAMBDA_RUNTIME_API || '');
const call = (method, urlPath, body, headers) => api.call(method, urlPath, body, headers);

async function post(urlPath, body, headers) {
  try {
    const res = await call('POST', urlPath, body, headers);
    if (res.status < 200 || res.status > 299) {
      process.stderr.write(
        `holactl bootstrap: POST ${urlPath} answered ${res.status}: ${res.body.toString().slice(0, 512)}\n`,
      );
    }
  } catch (e) {
    process.stderr.write(`holactl bootstrap: POST ${urlPath} failed: ${e}\n`);
  }
}

function postError(urlPath, error, errorType) {
  const body = toRapidResponse(error);
  return post(urlPath, JSON.stringify(body), {
    'Content-Type': 'application/json',
    [ERROR_TYPE_HEADER]: errorType ?? body.errorType,
  });
}

// ---------------------------------------------------------------------------------------------
// Loading the handler, as AWS's UserFunction.js.

function hasPackageJsonTypeModule(folder) {
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const pj = path.join(folder, 'package.json');
    if (existsSync(pj)) {
      try {
        return JSON.parse(readFileSync(pj, 'utf8'))?.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    if (folder === '/' || folder === path.dirname(folder)) return false;
    folder = path.dirname(folder);
  }
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const tryRequire = (p) => (existsSync(p) ? require(p) : undefined);
  const tryImport = async (p) => {
    if (!existsSync(p)) return undefined;
    if (process.features.require_module) {
      // The same module namespace as import() gives, without its asynchronous loader.
      try {
        return require(p);
      } catch (e) {
        if (e?.code !== 'ERR_REQUIRE_ASYNC_MODULE') throw e;
      }
    }
    return await import(pathToFileURL(p).href);
  };

  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const typeModule = hasPackageJsonTypeModule(path.dirname(base));
  if (!typeModule) {
    const cjs = tryRequire(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (typeModule && (await tryImport(base + '.js'))) ||
    (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (loaded) return loaded;
  // A directory with an index file, or a package in node_modules.
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e?.code === 'MODULE_NOT_FOUND' || e?.code === 'ERR_MODULE_NOT_FOUND') throw new ImportModuleError(e);
    throw e;
  }
  const resolve = (obj) => handlerPath.split('.').reduce((o, k) => o && o[k], obj);
  let fn = resolve(app);
  if (!fn && app && app.default) fn = resolve(app.default);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------------------------
// Process-wide failure handling.

let phase = 'init'; // 'init' | 'idle' | 'invoke'
let currentInvokePath = null;
let beforeExitAction = null;

function crash(label, error, exitCode) {
  logError(label, error);
  const done = () => process.exit(phase === 'init' ? 1 : exitCode);
  if (phase === 'init') postError(`${API}/init/error`, error).finally(done);
  else if (phase === 'invoke') postError(`${currentInvokePath}/error`, error, 'Unhandled').finally(done);
  else done();
}

process.on('uncaughtException', (error) => crash('Uncaught Exception', error, 129));
process.on('unhandledRejection', (reason, promise) =>
  crash('Unhandled Promise Rejection', new UnhandledPromiseRejection(reason, promise), 128),
);
process.on('beforeExit', () => {
  const action = beforeExitAction;
  beforeExitAction = null;
  if (action) action();
});

// ---------------------------------------------------------------------------------------------
// One invocation.

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/** Runs the handler; resolves to ['response', body string] or ['error', error]. */
function runHandler(handler, isAsync, headers, bodyString) {
  return new Promise((settle) => {
    let finished = false;
    let waitForEmptyEventLoop = true;
    const finish = (kind, value) => {
      if (finished) return;
      finished = true;
      beforeExitAction = null;
      if (kind === 'error') logError('Invoke Error', value);
      settle([kind, value]);
    };
    const done = (err, result) => {
      if (err !== undefined && err !== null) return finish('error', err);
      let body;
      try {
        body = JSON.stringify(result === undefined ? null : result);
      } catch {
        return finish('error', new Error('Unable to stringify response body'));
      }
      finish('response', body);
    };
    const callback = (err, result) => {
      if (finished) return;
      if ((err !== undefined && err !== null) || !waitForEmptyEventLoop) return done(err, result);
      // As on AWS: answer once the event loop has drained.
      beforeExitAction = () => setImmediate(() => done(null, result));
    };
    // Nothing left to run and no answer: a sync/callback handler answers null, an async one failed.
    beforeExitAction = () =>
      isAsync ? finish('error', new NodeJsExit(NODEJS_EXIT_MESSAGE)) : done(null, null);

    const deadline = headers['lambda-runtime-deadline-ms'];
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: (result) => done(null, result),
      fail: (err) => (err === undefined || err === null ? done('handled') : done(err, null)),
      done: (err, result) => done(err, result),
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    };
    try {
      Object.assign(context, {
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: headers['lambda-runtime-aws-request-id'],
        tenantId: headers['lambda-runtime-aws-tenant-id'],
        holaToken: headers['lambda-runtime-hola-token'],
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });
      const result = handler(JSON.parse(bodyString), context, callback);
      if (result && typeof result.then === 'function') {
        result.then(context.succeed, context.fail);
      } else if (result !== undefined && handler.length < 3) {
        context.succeed(result);
      }
    } catch (err) {
      callback(err);
    }
  });
}

const NODEJS_EXIT_MESSAGE =
  'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes';

// ---------------------------------------------------------------------------------------------
// Main.

async function main() {
  patchConsole();
  if (!process.env.AWS_LAMBDA_RUNTIME_API) {
    process.stderr.write('holactl bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }

  let handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT || process.cwd(), process.env._HANDLER || '');
  } catch (error) {
    logError('Init Error', error);
    await postError(`${API}/init/error`, error);
    process.exit(1);
  }
  const isAsync = handler.constructor?.name === 'AsyncFunction';
  phase = 'idle';

  for (;;) {
    let next;
    try {
      next = await call('GET', `${API}/invocation/next`);
    } catch (e) {
      process.stderr.write(`holactl bootstrap: runtime API unreachable: ${e}\n`);
      process.exit(1);
    }
    if (next.status !== 200) {
      process.stderr.write(`holactl bootstrap: invocation/next answered ${next.status}\n`);
      process.exit(1);
    }
    const headers = next.headers;
    const id = headers['lambda-runtime-aws-request-id'] || '';
    setRequestId(id);
    if (headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
    else delete process.env._X_AMZN_TRACE_ID;
    // The invocation's scoped token for the platform's internal API (/hola/v1/...): in the
    // context (holaToken) and, for this invocation only, in $HOLA_TOKEN.
    const holaToken = headers['lambda-runtime-hola-token'];
    if (holaToken) process.env.HOLA_TOKEN = holaToken;
    currentInvokePath = `${API}/invocation/${encodeURIComponent(id)}`;
    phase = 'invoke';

    const [kind, value] = await runHandler(handler, isAsync, headers, next.body.toString('utf8'));
    if (holaToken) delete process.env.HOLA_TOKEN;
    // stdout/stderr writes to pipes and files are synchronous on Linux: the output is out already.
    if (kind === 'response') {
      await post(`${currentInvokePath}/response`, value, { 'Content-Type': 'application/json' });
    } else {
      await postError(`${currentInvokePath}/error`, value, 'Unhandled');
    }
    phase = 'idle';
  }
}

main();
