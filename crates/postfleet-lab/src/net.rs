//! The lab's network: an IPv4 subnet, a bridge with the gateway address in the machine's own
//! namespace, and per host a network namespace joined to the bridge by a veth pair (or, behind
//! bastions, to an internal network's bridge: see `internal`). There is no default route inside
//! hosts and no forwarding: traffic stays between hosts and gateway.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::state::Names;
use super::sys;

/// First host address is network + HOST_OFFSET + 1 (h1 = .11 in a /24); below is the gateway.
const HOST_OFFSET: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn first(&self) -> u32 {
        u32::from(self.network)
    }

    fn last(&self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }

    /// How many hosts fit: addresses after the reserved ones, before the broadcast address.
    pub fn capacity(&self) -> u32 {
        (self.last() - self.first()).saturating_sub(HOST_OFFSET + 1)
    }

    /// Address of host number `index` (1-based).
    pub fn host_address(&self, index: u32) -> Result<Ipv4Addr> {
        if index == 0 || index > self.capacity() {
            crate::error::bad_input!(
                "subnet {self} has room for {} hosts; h{index} does not fit (choose a larger --subnet)",
                self.capacity()
            );
        }
        Ok(Ipv4Addr::from(self.first() + HOST_OFFSET + index))
    }

    /// One of the addresses below the hosts' (1 to HOST_OFFSET): .1 is the gateway on the
    /// lab's bridge and a bastion's inner leg on an internal network; .2 a bastion's outer one.
    pub fn reserved_address(&self, n: u32) -> Ipv4Addr {
        assert!((1..=HOST_OFFSET).contains(&n), "reserved address {n}");
        Ipv4Addr::from(self.first() + n)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The default subnet of a lab: 10.77.0.0/24 for `lab`, another 10.77.X.0/24 per name.
    pub fn default_for(lab: &str) -> Subnet {
        Subnet {
            network: Ipv4Addr::new(10, 77, Subnet::third_octet(lab), 0),
            prefix: 24,
        }
    }

    /// The default subnet of a lab's internal network `k` (1-based): 10.(200+k).X.0/24, X
    /// as in [`Subnet::default_for`].
    pub fn default_internal(lab: &str, k: u32) -> Subnet {
        Subnet {
            network: Ipv4Addr::new(10, 200 + k as u8, Subnet::third_octet(lab), 0),
            prefix: 24,
        }
    }

    fn third_octet(lab: &str) -> u8 {
        let third = if lab == "lab" {
            0
        } else {
            // FNV-1a: stable across releases, unlike std's hasher.
            let hash = lab.bytes().fold(0x811c9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x01000193)
            });
            1 + hash % 254
        };
        third as u8
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Subnet> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| {
            crate::error::bad_input_error!("subnet {s:?}: expected CIDR like 10.77.0.0/24")
        })?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            crate::error::bad_input_error!("subnet {s:?}: {addr:?} is not an IPv4 address")
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=27).contains(p))
            .ok_or_else(|| {
                crate::error::bad_input_error!("subnet {s:?}: prefix length must be 8 to 27")
            })?;
        let network = u32::from(addr) & Subnet::mask(prefix);
        if network != u32::from(addr) {
            crate::error::bad_input!(
                "subnet {s:?} has host bits set; did you mean {}/{prefix}?",
                Ipv4Addr::from(network)
            );
        }
        Ok(Subnet {
            network: addr,
            prefix,
        })
    }
}

impl TryFrom<String> for Subnet {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Subnet> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// One IPv4 route of the machine: its destination, device, type and protocol.
#[derive(Debug, PartialEq)]
pub struct Route {
    pub destination: Subnet,
    pub device: String,
    /// "unicast" unless the line names another type ("unreachable", "local", ...).
    pub kind: String,
    pub proto: String,
}

/// Parses `ip -4 route show table all`; skips default routes.
pub fn parse_routes(text: &str) -> Vec<Route> {
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "unreachable",
        "blackhole",
        "prohibit",
        "throw",
        "nat",
        "anycast",
    ];
    let mut routes = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        let mut kind = "unicast";
        if let Some(w) = words.peek().filter(|w| TYPES.contains(w)) {
            kind = w;
            words.next();
        }
        let Some(dest) = words.next() else { continue };
        if dest == "default" {
            continue;
        }
        let dest = if dest.contains('/') {
            dest.to_string()
        } else {
            format!("{dest}/32")
        };
        // Prefix lengths outside what Subnet accepts (e.g. /32 routes) are handled as is.
        let Some(destination) = parse_any_prefix(&dest) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        let after = |key: &str| {
            rest.iter()
                .position(|w| *w == key)
                .and_then(|i| rest.get(i + 1))
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        routes.push(Route {
            destination,
            device: after("dev"),
            kind: kind.to_string(),
            proto: after("proto"),
        });
    }
    routes
}

fn parse_any_prefix(s: &str) -> Option<Subnet> {
    let (addr, prefix) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(Subnet {
        network: Ipv4Addr::from(u32::from(addr) & Subnet::mask(prefix)),
        prefix,
    })
}

/// Refuses a subnet that overlaps a route of the machine or another lab's bridge.
pub fn check_subnet_is_free(names: &Names, subnet: &Subnet) -> Result<()> {
    let own_bridge = names.bridge();
    for route in machine_routes()? {
        if route.device == own_bridge || !route.destination.overlaps(subnet) {
            continue;
        }
        if route.kind == "unreachable" && route.proto == super::internal::ROUTE_PROTO {
            crate::error::bad_input!(
                "subnet {subnet} overlaps the internal network {} of a lab with bastions; \
                 pick another --subnet or --internal-subnet",
                route.destination
            );
        }
        if let Some(other) = route
            .device
            .strip_prefix("pf")
            .and_then(|d| d.strip_suffix("-br"))
        {
            crate::error::bad_input!(
                "subnet {subnet} overlaps lab '{other}' ({} on {}); pick another --subnet",
                route.destination,
                route.device
            );
        }
        crate::error::bad_input!(
            "subnet {subnet} overlaps the machine's route to {} (dev {}); pick another --subnet",
            route.destination,
            route.device
        );
    }
    Ok(())
}

/// The machine's IPv4 routes, every table.
pub fn machine_routes() -> Result<Vec<Route>> {
    let out = sys::run(Command::new("ip").args(["-4", "route", "show", "table", "all"]))?;
    Ok(parse_routes(&String::from_utf8_lossy(&out.stdout)))
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Names of network interfaces in the machine's namespace that start with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Network namespaces (in /run/netns) whose names start with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Bridges of other labs that are up (their interfaces exist).
pub fn other_lab_bridges(names: &Names) -> Vec<String> {
    let own = names.bridge();
    links_with_prefix("pf")
        .into_iter()
        .filter(|n| n.ends_with("-br") && *n != own)
        .collect()
}

/// The bridge with the gateway address; created if missing.
pub fn ensure_bridge(names: &Names, subnet: &Subnet) -> Result<()> {
    let bridge = names.bridge();
    if link_exists(&bridge) {
        return Ok(());
    }
    let gateway = format!("{}/{}", subnet.gateway(), subnet.prefix());
    ip_batch(&[
        format!("link add {bridge} type bridge"),
        format!("addr add {gateway} dev {bridge}"),
        format!("link set {bridge} up"),
    ])
    .with_context(|| format!("cannot create bridge {bridge}"))
}

/// One interface of a host: `ethN` with `address` on network `network` (0: the lab's bridge).
pub struct Leg {
    pub network: u32,
    pub address: Ipv4Addr,
    pub prefix: u8,
}

/// A host's namespace and, per leg, a veth pair whose outer end joins that network's bridge
/// (the lab's bridge in the machine's namespace, or an internal network's in its own).
pub fn create_host_network(names: &Names, host: &str, legs: &[Leg]) -> Result<()> {
    let netns = names.netns(host);
    remove_outer_ends(names, host, legs);
    sys::run(Command::new("ip").args(["netns", "add", &netns]))?;
    let mut inner_lines = vec!["link set lo up".to_string()];
    for (i, leg) in legs.iter().enumerate() {
        let ifname = format!("eth{i}");
        // A MAC derived from the address: a host reset keeps it, so neighbours' ARP caches
        // stay right (a new random MAC would leave them sending to the old one for half a
        // minute).
        let [a, b, c, d] = leg.address.octets();
        let mac = format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        if leg.network == 0 {
            let veth = names.bridge_link(host);
            ip_batch(&[
                format!("link add {veth} type veth peer name {ifname} address {mac} netns {netns}"),
                format!("link set {veth} master {} up", names.bridge()),
            ])?;
        } else {
            let veth = Names::link_tag(host);
            let mut outer = Command::new("ip");
            outer.args(["-n", &names.internal_netns(leg.network), "-batch", "-"]);
            sys_batch(
                &mut outer,
                &[
                    format!(
                        "link add {veth} type veth peer name {ifname} address {mac} netns {netns}"
                    ),
                    format!("link set {veth} master br0 up"),
                ],
            )?;
        }
        inner_lines.push(format!(
            "addr add {}/{} dev {ifname}",
            leg.address, leg.prefix
        ));
        inner_lines.push(format!("link set {ifname} up"));
    }
    let mut inner = Command::new("ip");
    inner.args(["-n", &netns, "-batch", "-"]);
    sys_batch(&mut inner, &inner_lines)
        .with_context(|| format!("cannot set up the network of {host}"))
}

/// A netns being torn down asynchronously may still hold a host's old veth pairs for a
/// moment: they go before new ones are made under the same names.
fn remove_outer_ends(names: &Names, host: &str, legs: &[Leg]) {
    for leg in legs {
        if leg.network == 0 {
            let veth = names.bridge_link(host);
            if link_exists(&veth) {
                sys::run_quiet(Command::new("ip").args(["link", "del", &veth]));
            }
        } else {
            let netns = names.internal_netns(leg.network);
            sys::run_quiet(Command::new("ip").args([
                "-n",
                &netns,
                "link",
                "del",
                &Names::link_tag(host),
            ]));
        }
    }
}

/// Removes a host's namespace and veth pairs (nothing if they are gone already); pairs
/// into internal networks die with the namespace.
pub fn remove_host_network(names: &Names, host: &str) {
    let veth = names.bridge_link(host);
    if link_exists(&veth) {
        sys::run_quiet(Command::new("ip").args(["link", "del", &veth]));
    }
    let netns = names.netns(host);
    if Path::new("/run/netns").join(&netns).exists() {
        sys::run_quiet(Command::new("ip").args(["netns", "del", &netns]));
    }
}

pub(crate) fn ip_batch(lines: &[String]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"]);
    sys_batch(&mut cmd, lines)
}

pub(crate) fn sys_batch(cmd: &mut Command, lines: &[String]) -> Result<()> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", sys::describe(cmd)))?;
    let mut input = lines.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`ip` failed on [{}]: {}",
            lines.join("; "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_parses_and_assigns_addresses() {
        let s: Subnet = "10.77.0.0/24".parse().unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(s.host_address(1).unwrap(), Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(s.capacity(), 244);
        assert_eq!(s.host_address(244).unwrap(), Ipv4Addr::new(10, 77, 0, 254));
        assert!(s.host_address(245).is_err());
        assert!(s.host_address(0).is_err());
    }

    #[test]
    fn subnet_rejects_bad_input() {
        assert!("10.77.0.5/24"
            .parse::<Subnet>()
            .unwrap_err()
            .to_string()
            .contains("10.77.0.0/24"));
        assert!("10.77.0.0".parse::<Subnet>().is_err());
        assert!("10.77.0.0/31".parse::<Subnet>().is_err());
        assert!("nope/24".parse::<Subnet>().is_err());
    }

    #[test]
    fn overlap() {
        let a: Subnet = "10.77.0.0/24".parse().unwrap();
        let b: Subnet = "10.77.0.128/25".parse().unwrap();
        let c: Subnet = "10.77.1.0/24".parse().unwrap();
        let wide: Subnet = "10.0.0.0/8".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(wide.overlaps(&c));
    }

    #[test]
    fn default_subnets_differ_per_name() {
        assert_eq!(Subnet::default_for("lab").to_string(), "10.77.0.0/24");
        assert_ne!(Subnet::default_for("test"), Subnet::default_for("lab"));
        assert_ne!(Subnet::default_for("test"), Subnet::default_for("ltest"));
    }

    #[test]
    fn routes_parse_with_types_and_devices() {
        let text = "default via 192.0.2.1 dev eth0\n\
                    192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                    local 192.0.2.2 dev eth0 table local proto kernel scope host src 192.0.2.2\n\
                    10.77.0.0/24 dev pflab-br proto kernel scope link src 10.77.0.1\n";
        let routes = parse_routes(text);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].destination.to_string(), "192.0.2.0/24");
        assert_eq!(routes[0].device, "eth0");
        assert_eq!(routes[1].destination.to_string(), "192.0.2.2/32");
        assert_eq!(routes[2].device, "pflab-br");
        assert_eq!(routes[1].kind, "local");
        assert_eq!(routes[0].proto, "kernel");
        let unreachable = parse_routes("unreachable 10.201.3.0/24 proto 250 \n");
        assert_eq!(unreachable[0].kind, "unreachable");
        assert_eq!(unreachable[0].proto, "250");
        assert_eq!(unreachable[0].device, "");
    }

    #[test]
    fn internal_subnets_differ_from_the_labs_own() {
        let lab = Subnet::default_for("bast");
        let inner = Subnet::default_internal("bast", 1);
        assert!(!lab.overlaps(&inner));
        assert!(!inner.overlaps(&Subnet::default_internal("bast", 2)));
        assert_eq!(inner.reserved_address(1).octets()[3], 1);
    }
}
