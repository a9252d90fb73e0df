//! A TCP proxy on 127.0.0.1 that answers the first requests with `503 Slow Down` (as an
//! overloaded S3 does) and passes later connections through to a real server: retries with
//! backoff are shown against it, the real server answering once the faults stop. It also keeps
//! what clients sent, to show which credentials went out.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct FaultyProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<u8>>>,
}

/// Bytes of the passed-through requests kept for [`FaultyProxy::sent`].
const KEPT: usize = 1 << 20;

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

impl FaultyProxy {
    /// Proxies to `127.0.0.1:upstream`, failing the first `failures` requests with a 503.
    pub fn start(upstream: u16, failures: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (counter, stopping, recorded) = (failed.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let fail = counter
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < failures).then_some(n + 1)
                    })
                    .is_ok();
                let recorded = recorded.clone();
                std::thread::spawn(move || match fail {
                    true => refuse(client),
                    false => pass(client, upstream, &recorded),
                });
            }
        });
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            failed,
            stop,
            sent,
        })
    }

    /// What clients sent through (the first MiB): request lines, headers, bodies.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().map(|s| s.clone()).unwrap_or_default()).into_owned()
    }

    /// Requests answered with a 503 so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

/// Reads the request head and answers 503, closing the connection.
fn refuse(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let answer = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
        SLOW_DOWN.len()
    );
    let _ = client.write_all(answer.as_bytes());
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies bytes both ways between the client and the upstream server until either closes.
fn pass(client: TcpStream, upstream: u16, recorded: &Arc<Mutex<Vec<u8>>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let recorded = recorded.clone();
    let forward = std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 << 10];
        while let Ok(n) = client_in.read(&mut buffer) {
            if n == 0 || server_out.write_all(&buffer[..n]).is_err() {
                break;
            }
            if let Ok(mut kept) = recorded.lock() {
                let room = KEPT.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buffer[..room]);
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Both);
    let _ = forward.join();
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
