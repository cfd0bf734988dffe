//! How rendering scales with the fleet: `cargo bench --bench render`. Loads an inventory of
//! N hosts in four groups and renders every host's desired state (`render_all`, as
//! `postfleet apply` does before touching any host) for three playbooks: the newsletter
//! split (playbooks/newsletter.yml, which reads no fleet-wide variable), one whose template
//! reads `groups` without printing the whole fleet (a count and the first member), and
//! one that lists every member of a group (its output grows with the fleet: linear per host
//! by nature). Prints the time per host at each size; flat columns mean linear in the fleet.
//! Not a test: plain std::time, the best of a few repetitions.

use std::path::Path;
use std::time::{Duration, Instant};

use postfleet_core::inventory::{self, VarMap};
use postfleet_core::{playbook, render};

const SIZES: [usize; 3] = [1_000, 3_000, 10_000];
const GROUPS: [&str; 4] = ["mx", "relay", "edge", "lists"];

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempdir();
    let counted = dir.join("counted.yml");
    std::fs::write(
        &counted,
        r#"- name: reads groups
  hosts: all
  instances:
    - name: "-"
      main_cf:
        myhostname: "{{ inventory_hostname }}.example"
        mx_count: "{{ groups['mx'] | length }}"
        first_relay: "{{ groups['relay'] | first }}"
"#,
    )
    .expect("write a playbook");
    let listed = dir.join("listed.yml");
    std::fs::write(
        &listed,
        r#"- name: lists a group
  hosts: all
  instances:
    - name: "-"
      main_cf:
        relays: "{% for h in groups['relay'] %}{{ h }} {% endfor %}"
"#,
    )
    .expect("write a playbook");
    let playbooks = [
        ("newsletter", repo.join("playbooks/newsletter.yml")),
        ("groups, count", counted),
        ("groups, listed", listed),
    ];
    println!(
        "render_all, time per host (best of 3), {} groups",
        GROUPS.len()
    );
    print!("{:>8} {:>12}", "hosts", "inventory");
    for (name, _) in &playbooks {
        print!(" {name:>16}");
    }
    println!();
    for &n in &SIZES {
        let path = dir.join(format!("inventory-{n}.yml"));
        std::fs::write(&path, inventory_text(n)).expect("write the inventory");
        let extra = VarMap::new();
        let (load_time, inv) = best_of(3, || inventory::load(&path, &extra).expect("inventory"));
        print!("{n:>8} {:>12}", per_host(load_time, n));
        for (_, file) in &playbooks {
            let pb = playbook::load(file).expect("playbook");
            // Only the hosts a play targets are rendered by apply; here every host is.
            let hosts = &inv.hosts;
            let (time, rendered) = best_of(3, || {
                render::render_all(&pb, &inv, hosts, &extra).expect("renders")
            });
            assert_eq!(rendered.len(), n);
            print!(" {:>16}", per_host(time, n));
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn per_host(d: Duration, n: usize) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6 / n as f64)
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let started = Instant::now();
        let value = f();
        best = best.min(started.elapsed());
        out = Some(value);
    }
    (best, out.expect("at least one repetition"))
}

/// N hosts, h1..hN, dealt round-robin into the groups, each with its address and port (as
/// the simulated fleet has), `lab_gateway` for the newsletter playbook.
fn inventory_text(n: usize) -> String {
    let mut text =
        String::from("all:\n  vars:\n    ssh_user: root\n    lab_gateway: 10.0.0.1\n  children:\n");
    for (g, group) in GROUPS.iter().enumerate() {
        text.push_str(&format!("    {group}:\n      hosts:\n"));
        for i in (1..=n).filter(|i| i % GROUPS.len() == g) {
            text.push_str(&format!(
                "        h{i}: {{ ssh_host: 127.0.0.1, ssh_port: {} }}\n",
                20000 + i
            ));
        }
    }
    text
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("postfleet-render-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
