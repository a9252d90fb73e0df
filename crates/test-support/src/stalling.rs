//! A TCP proxy on 127.0.0.1 in front of a real server that can be made to hang: once stalled,
//! it accepts connections and reads requests but forwards nothing either way, as a storage
//! server does when it hangs (no error, no answer). Connections opened before keep their bytes
//! until the stall ends.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct StallingProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// How often a stalled copy looks whether the stall (or the proxy) ended.
const LOOK: Duration = Duration::from_millis(50);

impl StallingProxy {
    /// Proxies to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (stalling, stopping) = (stalled.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(client_in), Ok(server_in)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                for (from, to) in [(client_in, server), (server_in, client)] {
                    let (stalling, stopping) = (stalling.clone(), stopping.clone());
                    std::thread::spawn(move || copy(from, to, &stalling, &stopping));
                }
            }
        });
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            stalled,
            stop,
        })
    }

    /// From now on (`true`) nothing passes, until `false`.
    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
fn copy(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool, stop: &AtomicBool) {
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        while stalled.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(LOOK);
        }
        if stop.load(Ordering::SeqCst) || to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
