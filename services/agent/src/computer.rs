//! One simulated computer: how it is generated from the fleet's name, seed
//! and its index, and the status snapshot it reports.
//!
//! Every attribute comes from a random generator seeded with (name, seed,
//! index) alone, so endpoint 7 of `sim1` is the same computer whatever the
//! size of the fleet and however many times the process restarts.

use std::collections::VecDeque;

use chrono::{Duration as Days, NaiveDate};
use rampart_shared::messages::{DiscoveredComputer, Heartbeat, PolicySettings, TaskResult};
use rand::{rngs::SmallRng, seq::SliceRandom, Rng, SeedableRng};
use uuid::Uuid;

/// Agent version every simulated endpoint runs.
pub const AGENT_VERSION: &str = "7.2.0";

/// Operating systems and how common each is on a business network.
const OPERATING_SYSTEMS: &[(&str, u32)] = &[
    ("Windows 11 Pro", 40),
    ("Windows 10 Enterprise", 32),
    ("Windows Server 2022", 10),
    ("Windows Server 2019", 6),
    ("Ubuntu 22.04 LTS", 7),
    ("macOS 14 Sonoma", 5),
];

/// Names the simulated engine gives the threats it finds.
pub const MALWARE: &[&str] = &[
    "Trojan.GenericKD.4821",
    "EICAR-Test-File",
    "Win32.Ramnit.A",
    "Backdoor.Agent.NFX",
    "Ransom.WannaCry.Gen",
    "Adware.Bundler.Zx",
    "Exploit.CVE-2017-11882",
    "Worm.Conficker.B",
    "PUA.CoinMiner.Gen",
    "JS.Downloader.Nemucod",
];

/// Places where the simulated threats are found.
const PATHS: &[&str] = &[
    "C:\\Users\\Public\\Downloads\\invoice.pdf.exe",
    "C:\\Users\\admin\\AppData\\Local\\Temp\\setup_tmp.dll",
    "C:\\Windows\\Temp\\svch0st.exe",
    "C:\\ProgramData\\Updater\\update.js",
    "D:\\Shares\\Finance\\report.xlsm",
    "/home/user/Downloads/crack.sh",
    "/tmp/.x/miner",
];

/// A threat found on a computer and not cleaned (the computer is infected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threat {
    pub malware: String,
    pub path: String,
}

/// The policy an endpoint applied last.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedPolicy {
    /// `None` is the server's built-in default policy.
    pub policy_id: Option<Uuid>,
    pub version: i32,
    pub settings: PolicySettings,
}

/// A computer with an agent: the state its heartbeats report.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub os: String,
    pub signatures_date: NaiveDate,
    pub realtime_protection: bool,
    /// Threats not cleaned; `active_threats` is their count.
    pub threats: Vec<Threat>,
    pub policy: Option<AppliedPolicy>,
    /// Outcomes of the last few tasks, so a redelivered task is answered
    /// with its result instead of being run twice.
    pub recent_results: VecDeque<TaskResult>,
}

/// How many finished task results an endpoint remembers.
const RECENT_RESULTS: usize = 4;

impl Endpoint {
    /// Endpoint `index` (from 1) of fleet `name`/`seed`, as it is on `today`.
    pub fn generate(name: &str, seed: u64, index: u32, today: NaiveDate) -> Self {
        let mut rng = computer_rng(name, seed, index, 0x656e_6470);
        let signatures_date = today - Days::days(rng.gen_range(0..=10));
        let realtime_protection = !rng.gen_bool(0.03);
        let threats = if rng.gen_bool(0.01) { vec![random_threat(&mut rng)] } else { Vec::new() };
        Self {
            id: endpoint_id(name, index),
            hostname: format!("pc-{index:05}"),
            ip: format!("10.{}.{}.{}", seed % 250, (index / 250) % 256, index % 250 + 1),
            os: random_os(&mut rng).to_owned(),
            signatures_date,
            realtime_protection,
            threats,
            policy: None,
            recent_results: VecDeque::new(),
        }
    }

    /// The endpoint a discovered computer becomes once an agent is deployed
    /// on it: same identity, fresh signatures, protection on.
    pub fn deployed(computer: &DiscoveredComputer, today: NaiveDate) -> Self {
        Self {
            id: computer.computer_id.clone(),
            hostname: computer.hostname.clone(),
            ip: computer.ip.clone(),
            os: computer.os.clone(),
            signatures_date: today,
            realtime_protection: true,
            threats: Vec::new(),
            policy: None,
            recent_results: VecDeque::new(),
        }
    }

    /// The status snapshot this endpoint sends.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            endpoint_id: self.id.clone(),
            hostname: self.hostname.clone(),
            ip: self.ip.clone(),
            os: self.os.clone(),
            agent_version: AGENT_VERSION.to_owned(),
            signatures_version: signatures_label(self.signatures_date),
            signatures_date: self.signatures_date,
            realtime_protection: self.realtime_protection,
            active_threats: self.threats.len() as u32,
            policy_id: self.policy.as_ref().and_then(|p| p.policy_id),
            policy_version: self.policy.as_ref().map(|p| p.version),
        }
    }

    /// Installs today's signatures and returns their version label.
    pub fn update_signatures(&mut self, today: NaiveDate) -> String {
        self.signatures_date = self.signatures_date.max(today);
        signatures_label(self.signatures_date)
    }

    /// Remembers a finished task's outcome (a bounded history).
    pub fn remember(&mut self, result: TaskResult) {
        if self.recent_results.len() == RECENT_RESULTS {
            self.recent_results.pop_front();
        }
        self.recent_results.push_back(result);
    }

    /// The remembered outcome of `task_id`, if it finished recently.
    pub fn finished(&self, task_id: Uuid) -> Option<&TaskResult> {
        self.recent_results.iter().find(|r| r.task_id == task_id)
    }
}

/// `<name>-<index:05>`, e.g. `sim1-00042`.
pub fn endpoint_id(name: &str, index: u32) -> String {
    format!("{name}-{index:05}")
}

/// `<name>-u<index:04>`, e.g. `sim1-u0003`: a computer without an agent.
pub fn computer_id(name: &str, index: u32) -> String {
    format!("{name}-u{index:04}")
}

/// The version label of signatures released on `date`: `YYYY.MM.DD`.
pub fn signatures_label(date: NaiveDate) -> String {
    date.format("%Y.%m.%d").to_string()
}

/// Unmanaged computer `index` (from 1) that fleet `name`/`seed` discovers.
pub fn discovered(name: &str, seed: u64, index: u32) -> DiscoveredComputer {
    let mut rng = computer_rng(name, seed, index, 0x6c61_6273);
    DiscoveredComputer {
        computer_id: computer_id(name, index),
        hostname: format!("lab-{index:04}"),
        // A different private range from the managed endpoints, so the two
        // never collide whatever their counts.
        ip: format!("172.{}.{}.{}", 16 + seed % 16, (index / 250) % 256, index % 250 + 1),
        mac: format!(
            "02:52:{:02x}:{:02x}:{:02x}:{:02x}",
            seed % 256,
            (index >> 16) & 0xff,
            (index >> 8) & 0xff,
            index & 0xff
        ),
        os: random_os(&mut rng).to_owned(),
        third_party_protection: rng.gen_bool(0.25),
    }
}

/// A random threat from the simulated engine's catalogue.
pub fn random_threat(rng: &mut impl Rng) -> Threat {
    Threat {
        malware: (*MALWARE.choose(rng).expect("the list is not empty")).to_owned(),
        path: (*PATHS.choose(rng).expect("the list is not empty")).to_owned(),
    }
}

/// A deterministic UUID (version 4 layout) drawn from `rng`, so a seeded
/// fleet produces the same detection ids run after run.
pub fn random_uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// The seed of a whole fleet: the name mixed into the numeric seed, so two
/// processes with the same seed and different names differ.
pub fn fleet_seed(name: &str, seed: u64) -> u64 {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    splitmix(hash ^ splitmix(seed))
}

fn computer_rng(name: &str, seed: u64, index: u32, salt: u64) -> SmallRng {
    SmallRng::seed_from_u64(splitmix(fleet_seed(name, seed) ^ splitmix(u64::from(index) ^ (salt << 32))))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_os(rng: &mut impl Rng) -> &'static str {
    OPERATING_SYSTEMS.choose_weighted(rng, |(_, weight)| *weight).expect("weights are positive").0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::topology::NameSegment;
    use std::net::Ipv4Addr;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    #[test]
    fn ids_follow_the_formats() {
        let e = Endpoint::generate("sim1", 1, 42, today());
        assert_eq!(e.id, "sim1-00042");
        assert_eq!(e.hostname, "pc-00042");
        let c = discovered("sim1", 1, 3);
        assert_eq!(c.computer_id, "sim1-u0003");
        assert_eq!(c.hostname, "lab-0003");
        for id in [&e.id, &c.computer_id] {
            NameSegment::parse(id).unwrap();
        }
    }

    #[test]
    fn addresses_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for index in 1..=2_000 {
            let ip = Endpoint::generate("sim1", 1, index, today()).ip;
            ip.parse::<Ipv4Addr>().unwrap();
            assert!(seen.insert(ip));
        }
        for index in 1..=500 {
            let c = discovered("sim1", 1, index);
            c.ip.parse::<Ipv4Addr>().unwrap();
            assert!(seen.insert(c.ip));
            assert_eq!(c.mac.split(':').count(), 6);
        }
    }

    #[test]
    fn same_name_and_seed_give_the_same_computer() {
        let a = Endpoint::generate("sim1", 1, 9, today());
        assert_eq!(a, Endpoint::generate("sim1", 1, 9, today()));
        assert_eq!(discovered("sim1", 1, 9), discovered("sim1", 1, 9));
        let others: Vec<_> = (2..30).map(|seed| Endpoint::generate("sim1", seed, 9, today())).collect();
        assert!(others.iter().any(|b| b.os != a.os || b.signatures_date != a.signatures_date));
        assert_ne!(fleet_seed("sim1", 1), fleet_seed("sim2", 1));
    }

    #[test]
    fn initial_status_is_mostly_healthy() {
        let fleet: Vec<_> = (1..=5_000).map(|i| Endpoint::generate("sim1", 1, i, today())).collect();
        let off = fleet.iter().filter(|e| !e.realtime_protection).count();
        let infected = fleet.iter().filter(|e| !e.threats.is_empty()).count();
        assert!((50..300).contains(&off), "{off} without real-time protection");
        assert!((10..120).contains(&infected), "{infected} infected");
        for e in &fleet {
            let age = (today() - e.signatures_date).num_days();
            assert!((0..=10).contains(&age));
            let hb = e.heartbeat();
            assert_eq!(hb.signatures_version, signatures_label(e.signatures_date));
            assert_eq!(hb.agent_version, AGENT_VERSION);
        }
        assert_eq!(signatures_label(today()), "2026.11.26");
    }

    #[test]
    fn deployment_keeps_the_identity() {
        let c = discovered("sim1", 1, 2);
        let e = Endpoint::deployed(&c, today());
        assert_eq!(
            (e.id.as_str(), e.hostname.as_str(), e.ip.as_str()),
            (c.computer_id.as_str(), c.hostname.as_str(), c.ip.as_str())
        );
        assert_eq!(e.signatures_date, today());
        assert!(e.realtime_protection);
    }
}
