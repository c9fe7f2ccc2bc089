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
//!
//! With a cluster secret, both sides also prove they know it without
//! sending it: each sends a random 32-byte nonce, and each answers with an
//! HMAC-SHA256 of both nonces and both indices under the secret. A peer
//! without the secret, or with another, is refused: the dialling process
//! stops with an error, the listening one says so on stderr and goes on
//! waiting for the right peer (a stranger cannot stop it). The traffic
//! itself is not encrypted: a cluster belongs on a private network.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::EngineError;

/// The first bytes of every handshake (with the version of its format).
const MAGIC: &[u8; 8] = b"weir\x00cl2";

/// The length of nonces and MACs.
const PROOF: usize = 32;

/// A random nonce.
fn nonce() -> Result<[u8; PROOF], EngineError> {
    let mut n = [0u8; PROOF];
    getrandom::fill(&mut n)
        .map_err(|e| startup(format!("no random numbers for the handshake: {e}")))?;
    Ok(n)
}

/// The MAC by which side `role` of the connection between `dialler` and
/// `listener` proves it knows `secret`, over the nonces `first` (its
/// peer's) and `second` (its own).
fn proof_mac(
    secret: &[u8],
    role: &[u8],
    first: &[u8; PROOF],
    second: &[u8; PROOF],
    dialler: usize,
    listener: usize,
) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(first);
    mac.update(second);
    mac.update(&(dialler as u64).to_le_bytes());
    mac.update(&(listener as u64).to_le_bytes());
    mac
}

/// The proof itself (see [`proof_mac`]).
fn proof(
    secret: &[u8],
    role: &[u8],
    first: &[u8; PROOF],
    second: &[u8; PROOF],
    dialler: usize,
    listener: usize,
) -> [u8; PROOF] {
    let mac = proof_mac(secret, role, first, second, dialler, listener);
    mac.finalize().into_bytes().into()
}

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
    secret: Option<&[u8]>,
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
        let secret = secret.map(<[u8]>::to_vec);
        std::thread::Builder::new()
            .name("weir-accept".into())
            .spawn(move || accept(&listener, &addresses, me, deadline, secret.as_deref()))
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
            secret,
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
    secret: Option<&[u8]>,
) -> Result<TcpStream, EngineError> {
    let mut last_error = None;
    let line = k + 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(startup(format!(
                "process {me} could not reach process {k} at {shown} within the connect timeout ({})",
                last_error.map_or("no answer".to_string(), |e: std::io::Error| e.to_string())
            )));
        }
        let mut stream =
            match TcpStream::connect_timeout(&address, left.min(Duration::from_secs(1))) {
                Ok(stream) => stream,
                Err(e) => {
                    last_error = Some(e);
                    std::thread::sleep(RETRY);
                    continue;
                }
            };
        let stranger = || {
            startup(format!(
                "{shown} (line {line} of the host file) answered, but not as process {k} of this weir cluster: another program listens there"
            ))
        };
        let mine = nonce()?;
        hello(&mut stream, me, processes, secret.is_some(), &mine).map_err(|_| stranger())?;
        let reply = read_reply(&mut stream).map_err(|_| stranger())?;
        if !reply.magic {
            return Err(stranger());
        }
        if reply.index != k as u64 {
            return Err(startup(format!(
                "{shown} (line {line} of the host file) is process {} of a weir cluster, not process {k}",
                reply.index
            )));
        }
        match (secret, reply.secret) {
            (None, false) => {}
            (Some(_), false) => {
                return Err(startup(format!(
                    "process {k} at {shown} has no cluster secret and this process has one: give every process the same WEIR_CLUSTER_SECRET or --secret-file"
                )));
            }
            (None, true) => {
                return Err(startup(format!(
                    "process {k} at {shown} requires a cluster secret: set WEIR_CLUSTER_SECRET or --secret-file, the same on every process"
                )));
            }
            (Some(secret), true) => {
                if proof_mac(secret, b"weir-listen", &mine, &reply.nonce, me, k)
                    .verify_slice(&reply.proof)
                    .is_err()
                {
                    return Err(startup(format!(
                        "process {k} at {shown} does not know this cluster's secret: refused (the processes have different secrets, or a stranger listens there)"
                    )));
                }
                let answer = proof(secret, b"weir-dial", &reply.nonce, &mine, me, k);
                stream.write_all(&answer).map_err(|_| stranger())?;
                // The listener closes a connection it refuses: wait for its
                // word that the proof was taken.
                let mut ok = [0u8; 1];
                if stream.read_exact(&mut ok).is_err() || ok[0] != 1 {
                    return Err(startup(format!(
                        "process {k} at {shown} refused this process's proof of the cluster secret: the processes have different secrets"
                    )));
                }
            }
        }
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(None).ok();
        stream.set_write_timeout(None).ok();
        return Ok(stream);
    }
}

/// The connecting side's half of the handshake: magic, cluster size, its
/// index, whether it has a secret, its nonce.
fn hello(
    stream: &mut TcpStream,
    me: usize,
    processes: usize,
    secret: bool,
    nonce: &[u8; PROOF],
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE))?;
    stream.set_write_timeout(Some(HANDSHAKE))?;
    let mut message = Vec::with_capacity(HELLO);
    message.extend_from_slice(MAGIC);
    message.extend_from_slice(&(processes as u64).to_le_bytes());
    message.extend_from_slice(&(me as u64).to_le_bytes());
    message.push(u8::from(secret));
    message.extend_from_slice(nonce);
    stream.write_all(&message)
}

/// The length of a hello.
const HELLO: usize = 8 + 8 + 8 + 1 + PROOF;

/// The length of a reply.
const REPLY: usize = 8 + 8 + 1 + PROOF + PROOF;

/// The listening side's answer.
struct Reply {
    magic: bool,
    index: u64,
    secret: bool,
    nonce: [u8; PROOF],
    proof: [u8; PROOF],
}

fn read_reply(stream: &mut TcpStream) -> std::io::Result<Reply> {
    let mut reply = [0u8; REPLY];
    stream.read_exact(&mut reply)?;
    let mut nonce = [0u8; PROOF];
    nonce.copy_from_slice(&reply[17..17 + PROOF]);
    let mut proof = [0u8; PROOF];
    proof.copy_from_slice(&reply[17 + PROOF..]);
    Ok(Reply {
        magic: &reply[..8] == MAGIC,
        index: u64_at(&reply, 8),
        secret: reply[16] == 1,
        nonce,
        proof,
    })
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
    secret: Option<&[u8]>,
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
        let (mut stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                return Err(startup(format!(
                    "process {me} cannot accept connections: {e}"
                )));
            }
        };
        stream.set_nonblocking(false).ok();
        let Ok(hello) = read_hello(&mut stream) else {
            continue; // not a weir process (a port scanner, a stray client): ignored
        };
        if !hello.magic {
            continue;
        }
        if hello.processes != processes as u64 {
            return Err(startup(format!(
                "process {} of a cluster of {} processes connected to process {me} of a cluster of {processes}: start every process with the same --processes",
                hello.index, hello.processes
            )));
        }
        let k = hello.index as usize;
        if k <= me || k >= processes {
            return Err(startup(format!(
                "process {me} was reached by a process saying it is process {}: two processes have the same --process, or the host files differ",
                hello.index
            )));
        }
        if later[k - me - 1].is_some() {
            return Err(startup(format!(
                "two processes say they are process {k}: give each process its own --process"
            )));
        }
        let mine = nonce()?;
        let my_proof = match secret {
            Some(secret) if hello.secret => {
                proof(secret, b"weir-listen", &hello.nonce, &mine, k, me)
            }
            _ => [0u8; PROOF],
        };
        let mut reply = Vec::with_capacity(REPLY);
        reply.extend_from_slice(MAGIC);
        reply.extend_from_slice(&(me as u64).to_le_bytes());
        reply.push(u8::from(secret.is_some()));
        reply.extend_from_slice(&mine);
        reply.extend_from_slice(&my_proof);
        if stream.write_all(&reply).is_err() {
            continue;
        }
        match (secret, hello.secret) {
            (None, false) => {}
            (Some(_), false) | (None, true) => {
                // The dialler sees the mismatch in the reply and stops.
                eprintln!(
                    "weir: process {me} refused a connection from {from} (as process {k}): {}",
                    if secret.is_some() {
                        "it has no cluster secret"
                    } else {
                        "it has a cluster secret and this process has none"
                    }
                );
                continue;
            }
            (Some(secret), true) => {
                let mut answer = [0u8; PROOF];
                let proven = stream.read_exact(&mut answer).is_ok()
                    && proof_mac(secret, b"weir-dial", &mine, &hello.nonce, k, me)
                        .verify_slice(&answer)
                        .is_ok();
                if !proven {
                    eprintln!(
                        "weir: process {me} refused a connection from {from} (as process {k}): it does not know this cluster's secret"
                    );
                    continue;
                }
                if stream.write_all(&[1]).is_err() {
                    continue;
                }
            }
        }
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(None).ok();
        stream.set_write_timeout(None).ok();
        later[k - me - 1] = Some(stream);
    }
    Ok(later.into_iter().flatten().collect())
}

/// A dialler's hello.
struct Hello {
    magic: bool,
    processes: u64,
    index: u64,
    secret: bool,
    nonce: [u8; PROOF],
}

fn read_hello(stream: &mut TcpStream) -> std::io::Result<Hello> {
    stream.set_read_timeout(Some(HANDSHAKE))?;
    stream.set_write_timeout(Some(HANDSHAKE))?;
    let mut hello = [0u8; HELLO];
    stream.read_exact(&mut hello)?;
    let mut nonce = [0u8; PROOF];
    nonce.copy_from_slice(&hello[25..]);
    Ok(Hello {
        magic: &hello[..8] == MAGIC,
        processes: u64_at(&hello, 8),
        index: u64_at(&hello, 16),
        secret: hello[24] == 1,
        nonce,
    })
}
