//! The three tools, each started the way its users start it, measured the same way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use postfleet_ssh::script::quote;

use crate::lab::{self, LabHost, LabRun};
use crate::measure::{self, RssSampler, RunCgroup};
use crate::report::Run;
use crate::{Case, Paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Postfleet,
    Floor,
    Ansible,
    /// Another postfleet build (`--before BIN`), run in turns with the others: a change
    /// measured before and after in the same run.
    Before,
}

impl Tool {
    pub fn label(self) -> &'static str {
        match self {
            Tool::Postfleet => "postfleet",
            Tool::Floor => "floor",
            Tool::Ansible => "ansible",
            Tool::Before => "before",
        }
    }
}

/// ansible-core as pinned here is installed from PyPI into target/bench/ansible-venv.
const ANSIBLE_CORE: &str = "ansible-core==2.19.*";

/// Everything the runs need, prepared once.
pub struct Kit<'a> {
    paths: &'a Paths,
    lab: &'a LabRun,
    postfleet: PathBuf,
    before: Option<PathBuf>,
    floor_script: PathBuf,
    ansible: Option<AnsibleSetup>,
    cgroup: RunCgroup,
}

struct AnsibleSetup {
    playbook_bin: PathBuf,
    config: PathBuf,
    inventory: PathBuf,
    /// ControlPersist sockets, a fresh directory per run.
    control_dir: PathBuf,
    version: String,
}

impl<'a> Kit<'a> {
    pub fn prepare(
        paths: &'a Paths,
        lab: &'a LabRun,
        postfleet: &Path,
        before: Option<&Path>,
        tools: &[Tool],
    ) -> Result<Kit<'a>> {
        for bin in std::iter::once(postfleet).chain(before) {
            if !bin.exists() {
                bail!("no postfleet binary at {}", bin.display());
            }
        }
        if tools.contains(&Tool::Before) && before.is_none() {
            bail!("the tool `before` needs --before BIN");
        }
        let ansible = if tools.contains(&Tool::Ansible) {
            Some(AnsibleSetup::prepare(paths, lab)?)
        } else {
            None
        };
        Ok(Kit {
            paths,
            lab,
            postfleet: postfleet.to_path_buf(),
            before: before.map(Path::to_path_buf),
            floor_script: paths.in_repo("benches/floor/newsletter.sh"),
            ansible,
            cgroup: RunCgroup::create(&format!("pfbench-{}", lab.name))?,
        })
    }

    pub fn ansible_version(&self) -> Option<&str> {
        self.ansible.as_ref().map(|a| a.version.as_str())
    }

    /// One timed run of `tool` over every host of the lab, or over `only`.
    pub fn run(
        &self,
        tool: Tool,
        case: Case,
        only: Option<&LabHost>,
        timeout: Duration,
    ) -> Result<Run> {
        let hosts: Vec<&LabHost> = match only {
            Some(host) => vec![host],
            None => self.lab.hosts.iter().collect(),
        };
        let cpu_before = self.cgroup.cpu();
        let sampler = RssSampler::start(&self.cgroup);
        let mut run = match tool {
            Tool::Postfleet => self.run_postfleet(&self.postfleet, only, hosts.len(), timeout)?,
            Tool::Before => {
                let bin = self.before.as_deref().context("no --before binary")?;
                self.run_postfleet(bin, only, hosts.len(), timeout)?
            }
            Tool::Floor => self.run_floor(&hosts, timeout)?,
            Tool::Ansible => self.run_ansible(only, hosts.len(), timeout)?,
        };
        let sampled = sampler.finish();
        run.tool = tool;
        run.case = case;
        run.controller_cpu = self.cgroup.cpu().saturating_sub(cpu_before);
        run.controller_peak_rss = run.controller_peak_rss.max(sampled);
        Ok(run)
    }

    fn run_postfleet(
        &self,
        bin: &Path,
        only: Option<&LabHost>,
        hosts: usize,
        timeout: Duration,
    ) -> Result<Run> {
        let out_path = self.paths.work.join("postfleet-run.jsonl");
        let mut cmd = Command::new(bin);
        cmd.arg("apply")
            .arg("-i")
            .arg(&self.lab.inventory)
            .arg(self.paths.in_repo("playbooks/newsletter.yml"))
            .arg("--json");
        if let Some(host) = only {
            cmd.args(["-l", &host.name]);
        }
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(Stdio::piped());
        measure::own_group(&mut cmd);
        self.cgroup.put(&mut cmd);
        let started = Instant::now();
        let child = cmd.spawn().context("start postfleet")?;
        let ended = measure::wait(child, started + timeout);
        let mut run = Run::timed(started.elapsed(), ended.timed_out);
        run.controller_peak_rss = ended.max_rss;
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let summary = output
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "summary");
        match summary {
            Some(summary) => run.take_postfleet_summary(&summary, hosts),
            None => run.fail(format!(
                "postfleet exited with {:?} and no JSON summary",
                ended.status
            )),
        }
        if ended.status != Some(0) && run.error.is_none() {
            run.fail(format!("postfleet exited with {:?}", ended.status));
        }
        Ok(run)
    }

    /// One `ssh` per host, all at once, each running the floor script, as `ssh host
    /// 'script'` runs it: the script inside the exec request (on stdin it would wait one
    /// round trip more, for sshd to open the channel's window).
    fn run_floor(&self, hosts: &[&LabHost], timeout: Duration) -> Result<Run> {
        let script = std::fs::read_to_string(&self.floor_script)
            .with_context(|| format!("read {}", self.floor_script.display()))?;
        let started = Instant::now();
        let mut children = Vec::new();
        for host in hosts {
            let remote = format!(
                "sh -c {} floor {} {}",
                quote(&script),
                quote(&self.lab.gateway),
                quote(&host.name)
            );
            let mut cmd = self.lab.ssh(host);
            cmd.arg(remote)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            measure::own_group(&mut cmd);
            self.cgroup.put(&mut cmd);
            children.push((host.name.clone(), cmd.spawn().context("start ssh")?));
        }
        let deadline = started + timeout;
        let mut failures = Vec::new();
        let mut rss_sum = 0;
        let mut timed_out = false;
        for (name, child) in children {
            let ended = measure::wait(child, deadline);
            rss_sum += ended.max_rss;
            timed_out |= ended.timed_out;
            if ended.status != Some(0) {
                failures.push(format!("{name}: exit {:?}", ended.status));
            }
        }
        let mut run = Run::timed(started.elapsed(), timed_out);
        // The ssh processes run side by side: their peaks add up.
        run.controller_peak_rss = rss_sum;
        if !failures.is_empty() {
            run.fail(format!("floor script failed on {}", failures.join(", ")));
        }
        Ok(run)
    }

    fn run_ansible(&self, only: Option<&LabHost>, hosts: usize, timeout: Duration) -> Result<Run> {
        let setup = self.ansible.as_ref().context("ansible is not set up")?;
        let _ = std::fs::remove_dir_all(&setup.control_dir);
        std::fs::create_dir_all(&setup.control_dir)?;
        let out_path = self.paths.work.join("ansible-run.log");
        let mut cmd = Command::new(&setup.playbook_bin);
        cmd.arg("-i")
            .arg(&setup.inventory)
            .arg(self.paths.in_repo("benches/ansible/newsletter.yml"))
            .args(only.map(|h| format!("--limit={}", h.name)))
            .env("ANSIBLE_CONFIG", &setup.config)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.paths.work.join("ansible-tmp"))
            .stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(Stdio::inherit());
        measure::own_group(&mut cmd);
        self.cgroup.put(&mut cmd);
        let started = Instant::now();
        let child = cmd.spawn().context("start ansible-playbook")?;
        let ended = measure::wait(child, started + timeout);
        let mut run = Run::timed(started.elapsed(), ended.timed_out);
        run.controller_peak_rss = ended.max_rss;
        setup.close_masters();
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        run.take_ansible_recap(&output, hosts);
        if ended.status != Some(0) && run.error.is_none() {
            run.fail(format!(
                "ansible-playbook exited with {:?} (log: {})",
                ended.status,
                out_path.display()
            ));
        }
        Ok(run)
    }

    /// Stops what runs may have left (ssh masters) and removes the run cgroup.
    pub fn cleanup(&self) {
        if let Some(setup) = &self.ansible {
            setup.close_masters();
        }
        self.cgroup.remove();
    }
}

impl AnsibleSetup {
    fn prepare(paths: &Paths, lab: &LabRun) -> Result<AnsibleSetup> {
        let venv = paths.work.join("ansible-venv");
        let playbook_bin = venv.join("bin/ansible-playbook");
        let version = |bin: &Path| -> Option<String> {
            let out = Command::new(bin).arg("--version").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status
                .success()
                .then(|| text.lines().next().unwrap_or_default().to_string())
        };
        let installed = version(&playbook_bin).filter(|v| v.contains("core 2.19."));
        let version = match installed {
            Some(v) => v,
            None => {
                println!("installing {ANSIBLE_CORE} into {} (pip)", venv.display());
                run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
                run_ok(Command::new(venv.join("bin/pip")).args([
                    "install",
                    "--quiet",
                    ANSIBLE_CORE,
                ]))?;
                version(&playbook_bin).context("ansible-playbook does not run after install")?
            }
        };
        let dir = paths.work.join("ansible");
        std::fs::create_dir_all(&dir)?;
        let control_dir = dir.join("cp");
        let mut ssh_args = Vec::new();
        match &lab.bastion {
            // Every host through the bastion (ProxyJump in the lab's ssh_config, which also
            // holds the options: the jump's own ssh reads no -o options of ours).
            Some(bastion) => ssh_args.push(format!("-F {}", bastion.ssh_config.display())),
            None => ssh_args.push("-F /dev/null".to_string()),
        }
        ssh_args.extend(["-o ControlMaster=auto", "-o ControlPersist=60s"].map(String::from));
        for pair in lab::ssh_options(&lab.known_hosts).chunks(2) {
            ssh_args.push(pair.join(" "));
        }
        let config = dir.join("ansible.cfg");
        std::fs::write(
            &config,
            format!(
                "# written by the benchmark (benches/fleet/tools.rs)\n\
                 [defaults]\nforks = {forks}\nhost_key_checking = True\n\
                 interpreter_python = /usr/bin/python3\nretry_files_enabled = False\n\
                 gathering = explicit\n\n\
                 [ssh_connection]\npipelining = True\nssh_args = {args}\n\
                 control_path_dir = {cp}\n",
                forks = lab.hosts.len(),
                args = ssh_args.join(" "),
                cp = control_dir.display()
            ),
        )?;
        let mut inv = String::from("[mx]\n");
        for h in &lab.hosts {
            match lab.bastion {
                // the name, so that its Host block (and ProxyJump) applies
                Some(_) => inv.push_str(&format!("{}\n", h.name)),
                None => inv.push_str(&format!("{} ansible_host={}\n", h.name, h.address)),
            }
        }
        inv.push_str(&format!(
            "\n[mx:vars]\nansible_user=root\nansible_ssh_private_key_file={}\nlab_gateway={}\n",
            lab.key.display(),
            lab.gateway
        ));
        let inventory = dir.join("inventory.ini");
        std::fs::write(&inventory, inv)?;
        Ok(AnsibleSetup {
            playbook_bin,
            config,
            inventory,
            control_dir,
            version,
        })
    }

    /// Asks every ControlPersist master left in the control directory to exit.
    fn close_masters(&self) {
        let Ok(entries) = std::fs::read_dir(&self.control_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let _ = Command::new("ssh")
                .args(["-F", "/dev/null", "-o"])
                .arg(format!("ControlPath={}", entry.path().display()))
                .args(["-O", "exit", "master"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
