//! Internal networks of a lab with bastions: each is a bridge inside a network namespace of
//! its own (`pf<lab>-netK`), so the machine has no interface, address or route into it. The
//! machine's namespace only gets an `unreachable` route for its subnet: a connect from the
//! controller fails at once instead of leaving through the machine's default route.
//!
//! The one way out of an internal network is to the lab's sink: each bastion forwards new TCP
//! connections from its inner leg to the gateway's sink ports, masqueraded as its own outer
//! address (so the machine needs no route back), and forwards nothing inward.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::net::{self, Subnet};
use super::state::{HostState, LabState, Names, Role, SINK_PORTS};
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

/// The sink path through the bastions, for one prepared host (its namespace exists): a host
/// on an internal network routes the gateway to the bastion in front of it, and a bastion
/// forwards and masquerades connections to the sink's ports (only those) outward.
pub fn route_to_sink(
    names: &Names,
    host: &HostState,
    subnets: &[Subnet],
    gateway: Ipv4Addr,
) -> Result<()> {
    let netns = names.netns(&host.name);
    if host.network > 0 {
        let subnet = subnets
            .get(host.network as usize)
            .with_context(|| format!("{}: no subnet for network {}", host.name, host.network))?;
        // The bastion in front of network k has .1 on it.
        let via = subnet.reserved_address(1);
        sys::run(Command::new("ip").args([
            "-n",
            &netns,
            "route",
            "replace",
            &format!("{gateway}/32"),
            "via",
            &via.to_string(),
        ]))?;
    }
    if host.role != Role::Bastion {
        return Ok(());
    }
    sys::require_tool("iptables", "iptables")?;
    let in_netns = |program: &str| {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", names.netns_path(&host.name).display()))
            .arg(program);
        cmd
    };
    sys::run(in_netns("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]))?;
    let ports = format!("{}:{}", SINK_PORTS[0], SINK_PORTS[SINK_PORTS.len() - 1]);
    let gateway = gateway.to_string();
    let rules: [&[&str]; 4] = [
        &["-P", "FORWARD", "DROP"],
        &[
            "-A", "FORWARD", "-i", "eth1", "-o", "eth0", "-p", "tcp", "-d", &gateway, "--dport",
            &ports, "-j", "ACCEPT",
        ],
        &[
            "-A",
            "FORWARD",
            "-i",
            "eth0",
            "-o",
            "eth1",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
        &[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "eth0",
            "-j",
            "MASQUERADE",
        ],
    ];
    for rule in rules {
        sys::run(in_netns("iptables").arg("-w").args(rule))
            .with_context(|| format!("{}: cannot open the path to the sink", host.name))?;
    }
    Ok(())
}
