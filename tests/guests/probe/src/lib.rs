//! A test adapter that does exactly what its record asks, so tests can drive
//! every capability surface from the host. `record.kind` names the operation,
//! `record.id` its argument. Results come back as `observed.fields`.

use handoff_sdk::http::{self, Request};
use handoff_sdk::{Action, AdapterError, Level, Observed, RecordRef, Target, export};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU32, Ordering};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Probe;

fn done(fields: Vec<(&str, String)>) -> Result<Observed, AdapterError> {
    Ok(Observed {
        exists: true,
        state: "done".into(),
        revision: None,
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        links: Vec::new(),
        applied_keys: Vec::new(),
    })
}

/// File and socket errors as the host's sandbox produces them.
fn io_error(what: &str, e: std::io::Error) -> AdapterError {
    // 76 is WASI's ENOTCAPABLE: the path is outside every preopen.
    if e.kind() == ErrorKind::PermissionDenied || e.raw_os_error() == Some(76) {
        AdapterError::Denied(format!("{what}: {e}"))
    } else if e.kind() == ErrorKind::NotFound {
        AdapterError::NotFound(format!("{what}: {e}"))
    } else {
        AdapterError::Invalid(format!("{what}: {e} ({:?})", e.kind()))
    }
}

impl Target for Probe {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        let arg = record.id.as_str();
        match record.kind.as_str() {
            "noop" => done(vec![]),
            // Counts calls in this instance: a fresh instance starts at 1.
            "count" => {
                let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
                done(vec![("count", n.to_string())])
            }
            "config" => match handoff_sdk::config(arg) {
                Some(v) => done(vec![("value", v)]),
                None => Err(AdapterError::NotFound(format!("config {arg}"))),
            },
            "log" => {
                handoff_sdk::log(Level::Info, arg);
                done(vec![])
            }
            // "COUNT LENGTH": that many lines of that many characters.
            "log-flood" => {
                let (count, len) = arg.split_once(' ').unwrap_or((arg, "10"));
                let line = "x".repeat(len.parse().unwrap_or(10));
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    handoff_sdk::log(Level::Info, &line);
                }
                done(vec![])
            }
            // Results far larger than any record: a state of ARG bytes, ARG
            // links, or an error message of ARG bytes.
            "big-state" => Ok(Observed {
                state: "s".repeat(arg.parse().unwrap_or(1)),
                ..done(vec![])?
            }),
            "many-links" => Ok(Observed {
                links: (0..arg.parse().unwrap_or(1))
                    .map(|i| format!("https://evidence.example/{i}"))
                    .collect(),
                ..done(vec![])?
            }),
            // The field ARG twice, with two values.
            "twice" => done(vec![(arg, "first".into()), (arg, "second".into())]),
            "big-error" => Err(AdapterError::Invalid("e".repeat(arg.parse().unwrap_or(1)))),
            "echo-error" => Err(AdapterError::Transient(arg.to_string())),
            // "METHOD URL [HEADER=VALUE]"
            "http" => {
                let mut parts = arg.splitn(3, ' ');
                let method = parts.next().unwrap_or("GET");
                let url = parts.next().unwrap_or_default();
                let mut request = Request::new(method, url);
                if let Some((name, value)) = parts.next().and_then(|h| h.split_once('=')) {
                    request = request.header(name, value);
                }
                let response = http::send(request)?;
                let header_names: Vec<&str> =
                    response.headers.iter().map(|(k, _)| k.as_str()).collect();
                done(vec![
                    ("status", response.status.to_string()),
                    ("body", response.text()),
                    ("headers", header_names.join(",")),
                ])
            }
            // "COUNT URL": that many GETs, whatever each answers; then how
            // many were answered and how many refused.
            "http-flood" => {
                let (count, url) = arg.split_once(' ').unwrap_or((arg, ""));
                let (mut answered, mut refused) = (0u32, 0u32);
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    match http::send(Request::new("GET", url)) {
                        Ok(_) => answered += 1,
                        Err(_) => refused += 1,
                    }
                }
                done(vec![
                    ("answered", answered.to_string()),
                    ("refused", refused.to_string()),
                ])
            }
            // `COUNT METHOD URL`: that many requests, stopping at the first
            // that fails.
            "http-writes" => {
                let parts: Vec<&str> = arg.splitn(3, ' ').collect();
                let [count, method, url] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("http-writes {arg}")));
                };
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    http::send(Request::new(method, url))?;
                }
                done(vec![("sent", count.to_string())])
            }
            // `COUNT MIB URL`: that many POSTs of a body of that many MiB,
            // stopping at the first that fails.
            "http-bodies" => {
                let parts: Vec<&str> = arg.splitn(3, ' ').collect();
                let [count, mib, url] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("http-bodies {arg}")));
                };
                let body = vec![b'x'; mib.parse::<usize>().unwrap_or(1) << 20];
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    http::send(Request::new("POST", url).body(body.clone()))?;
                }
                done(vec![("sent", count.to_string())])
            }
            "read" => handoff_sdk::fs::read_to_string(arg).and_then(|c| done(vec![("content", c)])),
            "write" => handoff_sdk::fs::write(arg, b"written by probe").and_then(|()| done(vec![])),
            "list" => handoff_sdk::fs::list(arg).and_then(|n| done(vec![("names", n.join(","))])),
            "exists" => {
                handoff_sdk::fs::try_exists(arg).and_then(|e| done(vec![("exists", e.to_string())]))
            }
            "mkdir" => handoff_sdk::fs::create_dir_all(arg).and_then(|()| done(vec![])),
            // Plain std, bypassing the SDK's checks: the sandbox alone decides.
            "read-raw" => std::fs::read_to_string(arg)
                .map_err(|e| io_error(&format!("read {arg}"), e))
                .and_then(|content| done(vec![("content", content)])),
            "write-raw" => std::fs::write(arg, b"written by probe")
                .map_err(|e| io_error(&format!("write {arg}"), e))
                .and_then(|()| done(vec![])),
            // `MIB PATH`: that many MiB written to one file, a MiB at a time.
            "fill" => {
                use std::io::Write;
                let (mib, path) = arg.split_once(' ').unwrap_or(("1", arg));
                let chunk = vec![b'x'; 1024 * 1024];
                let mut file = std::fs::File::create(path)
                    .map_err(|e| io_error(&format!("create {path}"), e))?;
                for _ in 0..mib.parse::<u32>().unwrap_or(1) {
                    file.write_all(&chunk)
                        .map_err(|e| io_error(&format!("write {path}"), e))?;
                }
                done(vec![("written-mib", mib.to_string())])
            }
            // `MIB DIR NAME`: that many MiB written to DIR/NAME, a MiB at a
            // time, by positioned writes (WASI's `descriptor.write`, not a
            // stream).
            "pwrite" => {
                use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
                let mut parts = arg.splitn(3, ' ');
                let (mib, dir, name) = (
                    parts.next().unwrap_or("1"),
                    parts.next().unwrap_or("/"),
                    parts.next().unwrap_or("file"),
                );
                let (root, _) = wasip2::filesystem::preopens::get_directories()
                    .into_iter()
                    .find(|(_, path)| path == dir)
                    .ok_or_else(|| AdapterError::NotFound(format!("no directory {dir}")))?;
                let file = root
                    .open_at(
                        PathFlags::empty(),
                        name,
                        OpenFlags::CREATE,
                        DescriptorFlags::WRITE,
                    )
                    .map_err(|e| AdapterError::Invalid(format!("open {name}: {e}")))?;
                let chunk = vec![b'x'; 1024 * 1024];
                for i in 0..u64::from(mib.parse::<u32>().unwrap_or(1)) {
                    file.write(&chunk, i * chunk.len() as u64)
                        .map_err(|e| AdapterError::Invalid(format!("write {name}: {e}")))?;
                }
                done(vec![("written-mib", mib.to_string())])
            }
            // `COUNT ENDPOINT BUCKET PREFIX`: that many objects of 4 MiB put
            // through the host's s3 interface, at PREFIX0, PREFIX1, ...
            "s3-put" => {
                let parts: Vec<&str> = arg.splitn(4, ' ').collect();
                let [count, endpoint, bucket, prefix] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("s3-put {arg}")));
                };
                let body = vec![b'x'; 4 * 1024 * 1024];
                for i in 0..count.parse::<u32>().unwrap_or(1) {
                    handoff_sdk::s3::put_object(
                        endpoint,
                        bucket,
                        &format!("{prefix}{i}"),
                        &body,
                        "application/octet-stream",
                    )?;
                }
                done(vec![("put", count.to_string())])
            }
            // `ENDPOINT BUCKET KEY EXPECTED BODY`: BODY put at KEY only if
            // the object is as EXPECTED (`absent`, or an entity tag).
            "s3-put-if" => {
                let parts: Vec<&str> = arg.splitn(5, ' ').collect();
                let [endpoint, bucket, key, expected, body] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("s3-put-if {arg}")));
                };
                let expected = match expected {
                    "absent" => handoff_sdk::s3::Expected::Absent,
                    tag => handoff_sdk::s3::Expected::Etag(tag.into()),
                };
                let info = handoff_sdk::s3::put_object_if(
                    endpoint,
                    bucket,
                    key,
                    body.as_bytes(),
                    "text/plain",
                    &expected,
                )?;
                done(vec![("etag", info.etag)])
            }
            // `COUNT SERVER FROM TO KEY`: that many mails sent, each with
            // KEY and its number in its subject and Message-ID.
            "mail" => {
                let parts: Vec<&str> = arg.splitn(5, ' ').collect();
                let [count, server, from, to, key] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("mail {arg}")));
                };
                for i in 0..count.parse::<u32>().unwrap_or(1) {
                    handoff_sdk::mail::send(
                        server,
                        &handoff_sdk::mail::Email {
                            sender: from.into(),
                            recipients: vec![to.into()],
                            subject: format!("{key} {i}"),
                            body: String::new(),
                            message_id: format!("{key}-{i}@probe.example.internal"),
                        },
                    )?;
                }
                done(vec![("sent", count.to_string())])
            }
            // `HOW SERVER FROM TO KEY`: one mail prepared, then handed over
            // twice (`twice`: the second answer is the error) or dropped
            // unsent (`dropped`).
            "mail-prepared" => {
                let parts: Vec<&str> = arg.splitn(5, ' ').collect();
                let [how, server, from, to, key] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("mail-prepared {arg}")));
                };
                let ready = handoff_sdk::mail::prepare(
                    server,
                    &handoff_sdk::mail::Email {
                        sender: from.into(),
                        recipients: vec![to.into()],
                        subject: format!("{key} prepared"),
                        body: String::new(),
                        message_id: format!("{key}@probe.example.internal"),
                    },
                )?;
                if how == "dropped" {
                    drop(ready);
                    return done(vec![("sent", "0".into())]);
                }
                let first = ready.hand_over();
                let second = ready.hand_over();
                done(vec![
                    ("first", format!("{first:?}")),
                    ("second", format!("{second:?}")),
                ])
            }
            // `COUNT SERVER SUBJECT`: that many messages published to a
            // JetStream subject, each with its number as its msg-id's end.
            "nats-publish" => {
                let parts: Vec<&str> = arg.splitn(3, ' ').collect();
                let [count, server, subject] = parts[..] else {
                    return Err(AdapterError::Invalid(format!("nats-publish {arg}")));
                };
                for i in 0..count.parse::<u32>().unwrap_or(1) {
                    handoff_sdk::nats::publish(
                        server,
                        subject,
                        &format!("{subject}-{i}"),
                        format!("{{\"n\":{i}}}").as_bytes(),
                    )?;
                }
                done(vec![("published", count.to_string())])
            }
            // `MIB PATH`: a file made that many MiB long without writing it.
            "grow" => {
                let (mib, path) = arg.split_once(' ').unwrap_or(("1", arg));
                let file = std::fs::File::create(path)
                    .map_err(|e| io_error(&format!("create {path}"), e))?;
                file.set_len(u64::from(mib.parse::<u32>().unwrap_or(1)) * 1024 * 1024)
                    .map_err(|e| io_error(&format!("grow {path}"), e))?;
                done(vec![])
            }
            // `COUNT DIR`: that many empty files made in a directory.
            "make" => {
                let (count, dir) = arg.split_once(' ').unwrap_or(("1", arg));
                let count = count.parse::<u32>().unwrap_or(1);
                for i in 0..count {
                    std::fs::File::create(format!("{dir}/f{i}"))
                        .map_err(|e| io_error(&format!("make {dir}/f{i}"), e))?;
                }
                done(vec![("made", count.to_string())])
            }
            "env" => {
                let all: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                match std::env::var(arg) {
                    Ok(v) => done(vec![("value", v), ("names", all.join(","))]),
                    Err(_) => Err(AdapterError::NotFound(format!(
                        "environment variable {arg} (environment has {} variables)",
                        all.len()
                    ))),
                }
            }
            "tcp" => std::net::TcpStream::connect(arg)
                .map_err(|e| io_error(&format!("connect {arg}"), e))
                .and_then(|_| done(vec![])),
            // `MIB ADDR`: that many MiB sent through a connection, a MiB at
            // a time.
            "tcp-send" => {
                use std::io::Write;
                let (mib, addr) = arg.split_once(' ').unwrap_or(("1", arg));
                let mut conn = std::net::TcpStream::connect(addr)
                    .map_err(|e| io_error(&format!("connect {addr}"), e))?;
                let chunk = vec![b'x'; 1024 * 1024];
                for _ in 0..mib.parse::<u32>().unwrap_or(1) {
                    conn.write_all(&chunk)
                        .map_err(|e| io_error(&format!("send to {addr}"), e))?;
                }
                done(vec![("sent-mib", mib.to_string())])
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            // "COUNT PATH": open PATH that many times and keep every one
            // open to the end of the call; then how many were opened.
            "hoard" => {
                let (count, path) = arg.split_once(' ').unwrap_or((arg, "/"));
                let mut open = Vec::new();
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    match std::fs::File::open(path) {
                        Ok(file) => open.push(file),
                        Err(e) => return Err(io_error(&format!("open {path}"), e)),
                    }
                }
                done(vec![("opened", open.len().to_string())])
            }
            "alloc" => {
                let mib: usize = arg.parse().unwrap_or(1024);
                let buffer = vec![1u8; mib * 1024 * 1024];
                done(vec![(
                    "len",
                    std::hint::black_box(buffer).len().to_string(),
                )])
            }
            other => Err(AdapterError::Unsupported(format!(
                "probe has no operation {other:?}"
            ))),
        }
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let state = match action {
            Action::SetState(s) => s,
            other => handoff_sdk::action_name(&other).to_string(),
        };
        Ok(Observed {
            exists: true,
            state,
            revision: Some(record.id),
            fields: Vec::new(),
            links: Vec::new(),
            applied_keys: vec![key],
        })
    }
}

export!(Probe: target);
