//! Internal networks of a lab with bastions: each is a bridge inside a network namespace of
//! its own (`pf<lab>-netK`), so the machine has no interface, address or route into it. The
//! machine's namespace only gets an `unreachable` route for its subnet: a connect from the
//! controller fails at once instead of leaving through the machine's default route.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::net::{self, Subnet};
use super::state::{LabState, Names};
use super::sys;

/// Routing protocol number marking the lab's `unreachable` routes (no name in rt_protos).
pub const ROUTE_PROTO: &str = "250";

/// Creates what is missing of every internal network of `state`.
pub fn ensure_networks(names: &Names, state: &LabState) -> Result<()> {
    for (i, subnet) in state.internal.iter().enumerate() {
        let k = i as u32 + 1;
        let netns = names.internal_netns(k);
        if !Path::new("/run/netns").join(&netns).exists() {
            sys::run(Command::new("ip").args(["netns", "add", &netns]))?;
            let mut cmd = Command::new("ip");
            cmd.args(["-n", &netns, "-batch", "-"]);
            net::sys_batch(
                &mut cmd,
                &[
                    "link add br0 type bridge".to_string(),
                    "link set br0 up".to_string(),
                ],
            )
            .with_context(|| format!("cannot create internal network {k}"))?;
        }
        if !has_route(subnet)? {
            sys::run(Command::new("ip").args([
                "route",
                "add",
                "unreachable",
                &subnet.to_string(),
                "proto",
                ROUTE_PROTO,
            ]))
            .with_context(|| format!("cannot fence off internal network {subnet}"))?;
        }
    }
    Ok(())
}

fn has_route(subnet: &Subnet) -> Result<bool> {
    Ok(net::machine_routes()?
        .iter()
        .any(|r| is_ours(r) && r.destination == *subnet))
}

fn is_ours(route: &net::Route) -> bool {
    route.kind == "unreachable" && route.proto == ROUTE_PROTO
}

/// The lab's `unreachable` routes that exist now (for the subnets it recorded).
pub fn routes_left(subnets: &[Subnet]) -> Vec<Subnet> {
    net::machine_routes()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| is_ours(r) && subnets.contains(&r.destination))
        .map(|r| r.destination)
        .collect()
}

/// Removes the routes of `subnets` (the namespaces go with the lab's other namespaces).
pub fn remove_routes(subnets: &[Subnet]) {
    for subnet in routes_left(subnets) {
        sys::run_quiet(Command::new("ip").args([
            "route",
            "del",
            "unreachable",
            &subnet.to_string(),
            "proto",
            ROUTE_PROTO,
        ]));
    }
}

/// Whether a TCP connect to `addr` succeeds from inside network namespace `netns` (a
/// thread of its own enters it, so the caller's namespace does not change).
pub fn connects_from(netns: &Path, addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(file) = File::open(netns) else {
        return false;
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns takes a descriptor we hold open for the call and changes only
                // this thread's network namespace; the thread ends right after.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return false;
                }
                TcpStream::connect_timeout(&addr, timeout).is_ok()
            })
            .join()
            .unwrap_or(false)
    })
}
