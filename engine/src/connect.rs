//! The connections between the processes of a cluster, made by weir and
//! handed to timely (`initialize_networking_from_sockets`): timely's own set-up
//! prints `awaiting connections` on stdout, waits forever for a peer that
//! never comes, retries once a second, and names no address in its errors.
//!
//! Process `k` listens on its address (line `k` of the host file) and
//! connects to every process before it, retrying every 50 ms, so the
//! processes may start in any order. Each connection starts with a
//! handshake: the connecting process sends [`MAGIC`], the number of
//! processes and its index; the listening one answers with [`MAGIC`] and
//! its own index. A peer that is not a weir process of this cluster, a
//! cluster of another size, and two processes with one index are errors
//! naming them. Everything must be connected within the timeout, or the
//! error names the processes missing and their addresses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::EngineError;

/// The first bytes of every handshake (with the version of its format).
const MAGIC: &[u8; 8] = b"weir\x00cl1";

/// How long a handshake may take once a connection is open.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// How often a process tries again to connect to one that is not up yet.
const RETRY: Duration = Duration::from_millis(50);

/// The connected sockets of process `me` of a cluster with `addresses`
/// (one per process), in process order, `None` at `me`, as timely takes
/// them.
///
/// # Errors
///
/// [`EngineError::Startup`] naming the address, the process and the cause:
/// an address that does not resolve, a port that cannot be listened on, a
/// peer that did not connect within `timeout`, a handshake that does not
/// match.
pub(crate) fn connect(
    addresses: &[String],
    me: usize,
    timeout: Duration,
) -> Result<Vec<Option<TcpStream>>, EngineError> {
    let processes = addresses.len();
    let resolved: Vec<SocketAddr> = addresses
        .iter()
        .enumerate()
        .map(|(k, a)| resolve(a, k))
        .collect::<Result<_, _>>()?;
    let listener = TcpListener::bind(resolved[me]).map_err(|e| {
        startup(format!(
            "process {me} cannot listen on {} (line {} of the host file): {e}",
            addresses[me],
            me + 1
        ))
    })?;
    let deadline = Instant::now() + timeout;
    // Connecting to the processes before this one and accepting the ones
    // after it go on at once, so that neither waits for the other.
    let accepting = {
        let addresses = addresses.to_vec();
        std::thread::Builder::new()
            .name("weir-accept".into())
            .spawn(move || accept(&listener, &addresses, me, deadline))
            .map_err(|e| startup(format!("cannot start a thread: {e}")))?
    };
    let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(processes);
    for (k, address) in resolved.iter().enumerate().take(me) {
        sockets.push(Some(dial(
            *address,
            &addresses[k],
            k,
            me,
            processes,
            deadline,
        )?));
    }
    sockets.push(None);
    let later = accepting
        .join()
        .map_err(|_| startup("the thread accepting connections panicked".into()))??;
    sockets.extend(later.into_iter().map(Some));
    Ok(sockets)
}

fn startup(message: String) -> EngineError {
    EngineError::Startup(message)
}

/// The socket address of process `k`'s `address`.
fn resolve(address: &str, k: usize) -> Result<SocketAddr, EngineError> {
    let invalid = |why: String| EngineError::Config {
        field: "--hostfile",
        expected: format!(
            "host:port addresses; line {} (process {k}) is `{address}`: {why}",
            k + 1
        ),
    };
    address
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .next()
        .ok_or_else(|| invalid("it resolves to no address".into()))
}

/// Connects to process `k` at `address`, retrying until `deadline`, and
/// shakes hands.
fn dial(
    address: SocketAddr,
    shown: &str,
    k: usize,
    me: usize,
    processes: usize,
    deadline: Instant,
) -> Result<TcpStream, EngineError> {
    let mut last_error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(startup(format!(
                "process {me} could not reach process {k} at {shown} within the connect timeout ({})",
                last_error.map_or("no answer".to_string(), |e: std::io::Error| e.to_string())
            )));
        }
        match TcpStream::connect_timeout(&address, left.min(Duration::from_secs(1))) {
            Ok(mut stream) => {
                let shaken = hello(&mut stream, me, processes).and_then(|()| {
                    let (magic, index) = read_reply(&mut stream)?;
                    Ok((magic, index))
                });
                return match shaken {
                    Ok((true, index)) if index == k as u64 => {
                        stream.set_nodelay(true).ok();
                        stream.set_read_timeout(None).ok();
                        stream.set_write_timeout(None).ok();
                        Ok(stream)
                    }
                    Ok((true, index)) => Err(startup(format!(
                        "{shown} (line {} of the host file) is process {index} of a weir cluster, not process {k}",
                        k + 1
                    ))),
                    Ok((false, _)) | Err(_) => Err(startup(format!(
                        "{shown} (line {} of the host file) answered, but not as process {k} of this weir cluster: another program listens there",
                        k + 1
                    ))),
                };
            }
            Err(e) => {
                last_error = Some(e);
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// The connecting side's half of the handshake.
fn hello(stream: &mut TcpStream, me: usize, processes: usize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE))?;
    stream.set_write_timeout(Some(HANDSHAKE))?;
    let mut message = Vec::with_capacity(24);
    message.extend_from_slice(MAGIC);
    message.extend_from_slice(&(processes as u64).to_le_bytes());
    message.extend_from_slice(&(me as u64).to_le_bytes());
    stream.write_all(&message)
}

/// The listening side's answer: whether it began with [`MAGIC`], and its
/// index.
fn read_reply(stream: &mut TcpStream) -> std::io::Result<(bool, u64)> {
    let mut reply = [0u8; 16];
    stream.read_exact(&mut reply)?;
    Ok((&reply[..8] == MAGIC, u64_at(&reply, 8)))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Accepts a connection from every process after `me`, until `deadline`:
/// their sockets, in process order.
fn accept(
    listener: &TcpListener,
    addresses: &[String],
    me: usize,
    deadline: Instant,
) -> Result<Vec<TcpStream>, EngineError> {
    let processes = addresses.len();
    let mut later: Vec<Option<TcpStream>> = (me + 1..processes).map(|_| None).collect();
    listener
        .set_nonblocking(true)
        .map_err(|e| startup(format!("process {me}: {e}")))?;
    while later.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            let missing: Vec<String> = later
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| {
                    let k = me + 1 + i;
                    format!("process {k} ({})", addresses[k])
                })
                .collect();
            return Err(startup(format!(
                "process {me} waited for {} to connect until the connect timeout; is it started, with the same host file?",
                missing.join(", ")
            )));
        }
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                return Err(startup(format!(
                    "process {me} cannot accept connections: {e}"
                )))
            }
        };
        stream.set_nonblocking(false).ok();
        let Ok((magic, count, index)) = read_hello(&mut stream) else {
            continue; // not a weir process (a port scanner, a stray client): ignored
        };
        if !magic {
            continue;
        }
        if count != processes as u64 {
            return Err(startup(format!(
                "process {index} of a cluster of {count} processes connected to process {me} of a cluster of {processes}: start every process with the same --processes"
            )));
        }
        let k = index as usize;
        if k <= me || k >= processes {
            return Err(startup(format!(
                "process {me} was reached by a process saying it is process {index}: two processes have the same --process, or the host files differ"
            )));
        }
        if later[k - me - 1].is_some() {
            return Err(startup(format!(
                "two processes say they are process {k}: give each process its own --process"
            )));
        }
        let mut reply = Vec::with_capacity(16);
        reply.extend_from_slice(MAGIC);
        reply.extend_from_slice(&(me as u64).to_le_bytes());
        if stream.write_all(&reply).is_err() {
            continue;
        }
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(None).ok();
        stream.set_write_timeout(None).ok();
        later[k - me - 1] = Some(stream);
    }
    Ok(later.into_iter().flatten().collect())
}

/// The connecting side's hello: whether it began with [`MAGIC`], the
/// number of processes and the index it sent.
fn read_hello(stream: &mut TcpStream) -> std::io::Result<(bool, u64, u64)> {
    stream.set_read_timeout(Some(HANDSHAKE))?;
    stream.set_write_timeout(Some(HANDSHAKE))?;
    let mut hello = [0u8; 24];
    stream.read_exact(&mut hello)?;
    Ok((&hello[..8] == MAGIC, u64_at(&hello, 8), u64_at(&hello, 16)))
}
