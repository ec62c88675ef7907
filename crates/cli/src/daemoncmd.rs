//! `daxplug daemon`: the event loop around the engine's daemon core. Events come from the
//! kernel's uevent netlink socket, or from the emulated machine's uevent log with `--sim`.

use crate::exit::Exit;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use daxplug_engine::daemon::{Daemon, Metrics};
use daxplug_engine::policy::Policy;
use daxplug_engine::{Host, Options};
use daxplug_model::Sim;
use rustix::net::{AddressFamily, RecvFlags, SocketType, netlink};

use crate::exit;

/// Where events come from.
pub enum Events<'a> {
    /// The kernel's `NETLINK_KOBJECT_UEVENT` socket.
    Netlink,
    /// The emulated machine: its actors run, its uevent log is read.
    Sim(&'a Sim),
    /// No event source (a copied tree under `--root`): look every half second.
    Poll,
}

/// Command-line options of `daemon`.
#[derive(Debug)]
pub struct DaemonArgs {
    /// The policy file.
    pub config: std::path::PathBuf,
    /// Apply once and exit.
    pub once: bool,
    /// Stop after this long (for tests and trials).
    pub exit_after: Option<Duration>,
    /// With `once`: plan only.
    pub dry_run: bool,
}

fn log(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "daxplug-daemon: {line}");
    let _ = out.flush();
}

/// A uevent that concerns daxplug: a memory block or a dax device.
fn relevant(msg: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let mut parts = text.split('\0');
    let head = parts.next()?;
    let subsystem = parts.find_map(|p| p.strip_prefix("SUBSYSTEM="))?;
    matches!(subsystem, "memory" | "dax").then(|| head.to_owned())
}

fn serve_metrics(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for metrics"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut buf);
            let body = metrics.lock().map(|m| m.render()).unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    log(&format!("metrics on http://{addr}/metrics"));
    Ok(())
}

/// Runs the daemon.
pub fn run(
    host: &dyn Host,
    events: &Events<'_>,
    args: &DaemonArgs,
) -> anyhow::Result<(String, Exit)> {
    let policy = Policy::load(&args.config)
        .map_err(|e| exit::Usage(format!("the policy is not valid: {e}")))?;
    let cancel = crate::setcmd::cancel_flag()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("cannot install the SIGHUP handler")?;
    let opts = Options {
        cancel: Arc::clone(&cancel),
        dry_run: args.dry_run,
        ..Options::default()
    };
    let metrics_addr = policy.metrics;
    let mut daemon = Daemon::new(host, policy, opts);
    daemon.config = Some(args.config.clone());
    if !args.dry_run {
        for line in daemon.recover()? {
            log(&line);
        }
    }
    let shared = Arc::new(Mutex::new(Metrics::default()));
    if let (Some(addr), false) = (metrics_addr, args.once) {
        serve_metrics(addr, Arc::clone(&shared))?;
    }
    let publish = |d: &Daemon<'_>| {
        if let Ok(mut m) = shared.lock() {
            *m = d.metrics.clone();
        }
    };
    let decisions = daemon.apply(args.once)?;
    for d in &decisions {
        log(&d.log_line());
        for line in &d.plan {
            log(&format!("  would run: {line}"));
        }
    }
    publish(&daemon);
    if args.once {
        daemon.unregister();
        let bad = decisions.iter().any(|d| !d.result.is_settled());
        return Ok((String::new(), if bad { Exit::Failure } else { Exit::Ok }));
    }
    log(&format!("watching {} rules", daemon.policy().rules.len()));
    let started = Instant::now();
    let socket = match events {
        Events::Netlink => {
            let fd = rustix::net::socket(
                AddressFamily::NETLINK,
                SocketType::RAW,
                Some(netlink::KOBJECT_UEVENT),
            )
            .context("cannot open the kernel uevent socket")?;
            rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1))
                .context("cannot listen to kernel uevents (needs root)")?;
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 4 << 20);
            rustix::net::sockopt::set_socket_timeout(
                &fd,
                rustix::net::sockopt::Timeout::Recv,
                Some(Duration::from_millis(500)),
            )
            .context("cannot set the uevent socket timeout")?;
            Some(fd)
        }
        Events::Sim(_) | Events::Poll => None,
    };
    let mut seen = match events {
        Events::Sim(sim) => sim.with(|m| m.uevents.last().map_or(0, |e| e.seq)),
        Events::Netlink | Events::Poll => 0,
    };
    let mut last_sweep = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while !cancel.load(Ordering::SeqCst) && args.exit_after.is_none_or(|d| started.elapsed() < d) {
        if reload.swap(false, Ordering::SeqCst) {
            match Policy::load(&args.config) {
                Ok(p) => {
                    log(&format!(
                        "reloaded {}: {} rules",
                        args.config.display(),
                        p.rules.len()
                    ));
                    daemon.set_policy(p);
                }
                Err(e) => log(&format!("reload refused, keeping the policy in force: {e}")),
            }
        }
        let mut wake = false;
        match (events, &socket) {
            (Events::Netlink, Some(fd)) => {
                match rustix::net::recv(fd, &mut buf[..], RecvFlags::empty()) {
                    Ok((_, n)) => {
                        if let Some(head) = relevant(&buf[..n.min(buf.len())]) {
                            tracing_like(&head);
                            wake = true;
                            // Let a burst of events settle before acting on all of them.
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Err(rustix::io::Errno::NOBUFS) => {
                        log("uevent buffer overflowed: rescanning every device");
                        wake = true;
                    }
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(anyhow::anyhow!("reading kernel uevents failed: {e}")),
                }
            }
            (Events::Sim(sim), _) => {
                let last = sim.with(|m| {
                    for _ in 0..20 {
                        m.step();
                    }
                    m.uevents.last().map_or(0, |e| e.seq)
                });
                if last > seen {
                    seen = last;
                    wake = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
        // Backoff expires, and drift can come from what sends no uevent: look anyway every
        // second.
        if wake || last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            for d in daemon.apply(false)? {
                log(&d.log_line());
            }
            publish(&daemon);
        }
    }
    daemon.unregister();
    log("stopping");
    Ok((String::new(), Exit::Ok))
}

fn tracing_like(head: &str) {
    if std::env::var_os("DAXPLUG_DEBUG").is_some() {
        log(&format!("uevent {head}"));
    }
}
