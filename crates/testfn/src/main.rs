//! `holactl-noop-runtime`: the smallest useful AWS Lambda custom runtime, for benchmarks and
//! tests. Deployed as a `provided` function (the package holds this binary as `bootstrap`).
//!
//! It keeps one keep-alive HTTP/1.1 connection to `$AWS_LAMBDA_RUNTIME_API` and loops
//! `GET /2018-06-01/runtime/invocation/next` → `POST …/{id}/response`, echoing the event back,
//! or answering `{}` when `NOOP_MODE=empty`. Standard library only, so it starts in about a
//! millisecond and adds nothing of its own to what is measured.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// Largest header section accepted from the Runtime API.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One HTTP answer.
struct Answer {
    status: u16,
    request_id: Option<String>,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection to the Runtime API, reopened when the server closes it.
struct Conn {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn connect(addr: &str) -> io::Result<BufReader<TcpStream>> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(BufReader::new(stream))
    }

    /// Sends one request; a failure on a reused connection (the server may have closed it
    /// while idle) is retried once on a fresh one.
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Answer> {
        if let Some(mut stream) = self.stream.take() {
            if let Ok((answer, keep)) = exchange(&mut stream, &self.addr, method, path, body) {
                if keep {
                    self.stream = Some(stream);
                }
                return Ok(answer);
            }
        }
        let mut stream = Self::connect(&self.addr)?;
        let (answer, keep) = exchange(&mut stream, &self.addr, method, path, body)?;
        if keep {
            self.stream = Some(stream);
        }
        Ok(answer)
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Writes a request and reads its answer; also says whether the connection can be reused.
fn exchange(
    stream: &mut BufReader<TcpStream>,
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<(Answer, bool)> {
    // Head and body in one write: with TCP_NODELAY, two writes would be two segments.
    let mut req = Vec::with_capacity(160 + body.len());
    write!(req, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n")?;
    if method == "POST" {
        write!(
            req,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )?;
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    stream.get_mut().write_all(&req)?;
    read_answer(stream)
}

fn read_line(
    stream: &mut BufReader<TcpStream>,
    line: &mut String,
    budget: &mut usize,
) -> io::Result<()> {
    line.clear();
    let n = stream.read_line(line)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    *budget = budget
        .checked_sub(n)
        .ok_or_else(|| invalid("response head too large"))?;
    Ok(())
}

fn read_answer(stream: &mut BufReader<TcpStream>) -> io::Result<(Answer, bool)> {
    let mut budget = MAX_HEAD_BYTES;
    let mut line = String::new();
    read_line(stream, &mut line, &mut budget)?;
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut keep = version == "HTTP/1.1";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut request_id = None;
    loop {
        read_line(stream, &mut line, &mut budget)?;
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid(format!("bad header line {header:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                keep = false;
            } else if value.contains("keep-alive") {
                keep = true;
            }
        } else if name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
            request_id = Some(value.to_owned());
        }
    }
    let body = if chunked {
        read_chunked(stream, &mut line)?
    } else if let Some(n) = length {
        let mut body = vec![0; n];
        stream.read_exact(&mut body)?;
        body
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        // No framing: the body runs to the end of the connection.
        keep = false;
        let mut body = Vec::new();
        stream.read_to_end(&mut body)?;
        body
    };
    Ok((
        Answer {
            status,
            request_id,
            body,
        },
        keep,
    ))
}

fn read_chunked(stream: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = MAX_HEAD_BYTES;
        read_line(stream, line, &mut budget)?;
        let size = line.trim_end_matches(['\r', '\n']);
        let size = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                read_line(stream, line, &mut budget)?;
                if line.trim_end_matches(['\r', '\n']).is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        stream.read_exact(&mut crlf)?;
    }
}

fn run(addr: String, empty: bool) -> Result<(), String> {
    let mut conn = Conn { addr, stream: None };
    // The Runtime API is up before the runtime starts; a short grace covers a slow accept.
    for attempt in 0.. {
        match Conn::connect(&conn.addr) {
            Ok(s) => {
                conn.stream = Some(s);
                break;
            }
            Err(e) if attempt >= 50 => {
                return Err(format!("cannot connect to {}: {e}", conn.addr));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    loop {
        let next = conn
            .request("GET", NEXT, &[])
            .map_err(|e| format!("GET {NEXT}: {e}"))?;
        if next.status != 200 {
            return Err(format!(
                "GET {NEXT}: status {}: {}",
                next.status,
                String::from_utf8_lossy(&next.body)
            ));
        }
        let id = next
            .request_id
            .ok_or_else(|| format!("GET {NEXT}: no Lambda-Runtime-Aws-Request-Id"))?;
        let path = format!("/2018-06-01/runtime/invocation/{id}/response");
        let body: &[u8] = if empty { b"{}" } else { &next.body };
        let posted = conn
            .request("POST", &path, body)
            .map_err(|e| format!("POST {path}: {e}"))?;
        if !(200..300).contains(&posted.status) {
            // The invocation is lost (e.g. it timed out meanwhile); keep serving.
            eprintln!(
                "holactl-noop-runtime: POST {path}: status {}: {}",
                posted.status,
                String::from_utf8_lossy(&posted.body)
            );
        }
    }
}

fn main() -> ExitCode {
    let Some(addr) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .filter(|a| !a.is_empty())
    else {
        eprintln!("holactl-noop-runtime: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::FAILURE;
    };
    let empty = std::env::var("NOOP_MODE").is_ok_and(|m| m == "empty");
    match run(addr, empty) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holactl-noop-runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
