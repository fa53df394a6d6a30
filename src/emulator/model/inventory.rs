//! The emulated CMDB: host ids ↔ addresses (hosts from the world, plus hosts created on
//! the fly when a request names one the world does not know, unless `strict_hosts`),
//! dynamic groups, topology nodes, accounts, scripts and plans, and the resolution of a
//! request's target list into de-duplicated hosts.
//!
//! Hosts created on the fly: an unknown `cloud:ip` gets a fresh host id (from 1,000,001
//! up, or past the largest world id); an unknown host id N below 2^24 becomes the host
//! `0:127.a.b.c` with a.b.c the three low bytes of N, so the same id always maps to the
//! same sandbox. Unknown dynamic groups and topology nodes contribute no hosts (they are
//! 1244002 under `strict_hosts`).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::emulator::model::job_error::{JobError, code};
use crate::emulator::model::world::{
    AccountDef, HostDef, HostRef, PlanDef, ScriptDef, TargetDef, TopoRef, World,
};
use crate::emulator::model::world_objects::{
    self, ContainerDef, ContainerFilter, ThirdPartySourceDef,
};
use crate::job_api::types::HostAddr;

/// A resolved host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    /// Address.
    pub addr: HostAddr,
    /// `bk_host_id`.
    pub host_id: u64,
}

/// A host as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSel {
    /// `bk_host_id`.
    Id(u64),
    /// `bk_cloud_id` + `ip`.
    Addr(HostAddr),
}

/// A request's (or plan step's) target: hosts, groups, nodes, or a host variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSpec {
    /// Static hosts.
    pub hosts: Vec<HostSel>,
    /// Dynamic group ids.
    pub groups: Vec<String>,
    /// Topology nodes.
    pub topo: Vec<TopoRef>,
    /// A host-list global variable name.
    pub variable: Option<String>,
}

impl TargetSpec {
    /// Whether nothing at all is named.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.groups.is_empty()
            && self.topo.is_empty()
            && self.variable.is_none()
    }

    /// A spec from a world definition.
    pub fn from_def(def: &TargetDef) -> Result<TargetSpec, BadHost> {
        Ok(TargetSpec {
            hosts: def.hosts.iter().map(host_sel).collect::<Result<_, _>>()?,
            groups: def.dynamic_groups.clone(),
            topo: def.topo_nodes.clone(),
            variable: def.variable.clone(),
        })
    }
}

/// A world host reference as a selector.
pub fn host_sel(reference: &HostRef) -> Result<HostSel, BadHost> {
    match reference {
        HostRef::Id(id) => Ok(HostSel::Id(*id)),
        HostRef::Addr(text) => HostAddr::parse(text)
            .map(HostSel::Addr)
            .ok_or_else(|| BadHost::Reference(text.clone())),
    }
}

/// A world host entry or reference that names no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHost {
    /// A reference that is neither `cloud:ip`, `ip` nor a host id.
    #[error("`{0}` is not a host (cloud:ip, ip or host_id)")]
    Reference(String),
    /// A declared host whose `ip` is not an IPv4 address.
    #[error("host `{0}` is not an IPv4 address")]
    Address(String),
}

impl From<BadHost> for JobError {
    fn from(bad: BadHost) -> Self {
        JobError::new(code::HOST_INVALID, bad.to_string())
    }
}

/// An execution account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `account_id`.
    pub id: i64,
    /// `account_alias`.
    pub alias: String,
}

struct Registry {
    by_addr: HashMap<HostAddr, u64>,
    by_id: HashMap<u64, HostAddr>,
    next_id: u64,
}

/// The CMDB view of the world.
pub struct Inventory {
    world: World,
    registry: RwLock<Registry>,
}

const FIRST_CREATED_HOST_ID: u64 = 1_000_001;

impl Inventory {
    /// Builds the inventory; refuses malformed host entries.
    pub fn new(mut world: World) -> Result<Self, BadHost> {
        let mut registry = Registry {
            by_addr: HashMap::new(),
            by_id: HashMap::new(),
            next_id: FIRST_CREATED_HOST_ID,
        };
        let largest = world
            .hosts
            .iter()
            .filter_map(|h| h.host_id)
            .max()
            .unwrap_or(0);
        registry.next_id = registry.next_id.max(largest + 1);
        for def in &world.hosts {
            let addr = HostAddr::parse(&format!("{}:{}", def.cloud, def.ip))
                .ok_or_else(|| BadHost::Address(def.ip.clone()))?;
            let id = match def.host_id {
                Some(id) => id,
                None => {
                    registry.next_id += 1;
                    registry.next_id - 1
                }
            };
            registry.by_addr.insert(addr.clone(), id);
            registry.by_id.insert(id, addr);
        }
        stand_ins(&mut world, &mut registry);
        for group in &world.dynamic_groups {
            for h in &group.hosts {
                host_sel(h)?;
            }
        }
        for node in &world.topology {
            for h in &node.hosts {
                host_sel(h)?;
            }
        }
        Ok(Inventory {
            world,
            registry: RwLock::new(registry),
        })
    }

    /// The world as loaded.
    pub fn world(&self) -> &World {
        &self.world
    }

    fn strict(&self) -> bool {
        self.world.settings.strict_hosts
    }

    /// Resolves one host selector; creates unknown hosts unless strict.
    pub fn host(&self, sel: &HostSel) -> Result<Host, JobError> {
        {
            let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
            match sel {
                HostSel::Id(id) => {
                    if let Some(addr) = reg.by_id.get(id) {
                        return Ok(Host {
                            addr: addr.clone(),
                            host_id: *id,
                        });
                    }
                }
                HostSel::Addr(addr) => {
                    if let Some(id) = reg.by_addr.get(addr) {
                        return Ok(Host {
                            addr: addr.clone(),
                            host_id: *id,
                        });
                    }
                }
            }
        }
        if self.strict() {
            return Err(invalid_hosts(&[describe(sel)]));
        }
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        match sel {
            HostSel::Id(id) => {
                if *id >= 1 << 24 {
                    return Err(invalid_hosts(&[describe(sel)]));
                }
                let addr = HostAddr {
                    cloud_id: 0,
                    ip: format!("127.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255),
                };
                if let Some(existing) = reg.by_addr.get(&addr) {
                    // The derived address already belongs to another host id.
                    if existing != id {
                        return Err(invalid_hosts(&[describe(sel)]));
                    }
                }
                reg.by_addr.insert(addr.clone(), *id);
                reg.by_id.insert(*id, addr.clone());
                Ok(Host { addr, host_id: *id })
            }
            HostSel::Addr(addr) => {
                if let Some(id) = reg.by_addr.get(addr) {
                    return Ok(Host {
                        addr: addr.clone(),
                        host_id: *id,
                    });
                }
                let mut id = reg.next_id;
                while reg.by_id.contains_key(&id) {
                    id += 1;
                }
                reg.next_id = id + 1;
                reg.by_addr.insert(addr.clone(), id);
                reg.by_id.insert(id, addr.clone());
                Ok(Host {
                    addr: addr.clone(),
                    host_id: id,
                })
            }
        }
    }

    /// The host id of an address, registering it when new (never fails in lenient mode).
    pub fn lookup(&self, addr: &HostAddr) -> Option<Host> {
        let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
        reg.by_addr.get(addr).map(|id| Host {
            addr: addr.clone(),
            host_id: *id,
        })
    }

    /// The address of a known host id.
    pub fn lookup_id(&self, id: u64) -> Option<Host> {
        let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
        reg.by_id.get(&id).map(|addr| Host {
            addr: addr.clone(),
            host_id: id,
        })
    }

    /// The hosts a request's target names (no host variables), refusing an empty set
    /// with JOB's 1244001 as every fast task does.
    pub fn resolve_targets(&self, spec: &TargetSpec) -> Result<Vec<Host>, JobError> {
        let hosts = self.resolve(spec, &HashMap::new())?;
        if hosts.is_empty() {
            return Err(JobError::server_empty());
        }
        Ok(hosts)
    }

    /// Resolves a target spec into hosts: static hosts, then groups, then nodes, then
    /// the variable's hosts (from `vars`), merged and de-duplicated in that order.
    pub fn resolve(
        &self,
        spec: &TargetSpec,
        vars: &HashMap<String, Vec<Host>>,
    ) -> Result<Vec<Host>, JobError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |host: Host, out: &mut Vec<Host>| {
            if seen.insert(host.addr.clone()) {
                out.push(host);
            }
        };
        let mut invalid = Vec::new();
        for sel in &spec.hosts {
            match self.host(sel) {
                Ok(host) => push(host, &mut out),
                Err(_) => invalid.push(describe(sel)),
            }
        }
        for group in &spec.groups {
            match self.world.dynamic_groups.iter().find(|g| &g.id == group) {
                Some(def) => {
                    for r in &def.hosts {
                        let sel = host_sel(r)?;
                        push(self.host(&sel)?, &mut out);
                    }
                }
                None if self.strict() => invalid.push(format!("dynamic group {group}")),
                None => {}
            }
        }
        for node in &spec.topo {
            match self
                .world
                .topology
                .iter()
                .find(|t| t.id == node.id && t.node_type == node.node_type)
            {
                Some(def) => {
                    for r in &def.hosts {
                        let sel = host_sel(r)?;
                        push(self.host(&sel)?, &mut out);
                    }
                }
                None if self.strict() => {
                    invalid.push(format!("topo node {}:{}", node.node_type, node.id))
                }
                None => {}
            }
        }
        if let Some(name) = &spec.variable {
            match vars.get(name) {
                Some(hosts) => {
                    for host in hosts {
                        push(host.clone(), &mut out);
                    }
                }
                None => {
                    return Err(JobError::new(
                        code::HOST_VAR_NOT_EXIST,
                        format!("Host variable [{name}] does not exist"),
                    ));
                }
            }
        }
        if !invalid.is_empty() {
            return Err(invalid_hosts(&invalid));
        }
        Ok(out)
    }

    /// An account by alias (v2 `account`, v3 `account_alias`).
    pub fn account_by_alias(&self, alias: &str) -> Result<Account, JobError> {
        if self.world.accounts.is_empty() {
            return Ok(Account {
                id: 0,
                alias: alias.to_owned(),
            });
        }
        self.world
            .accounts
            .iter()
            .find(|a| a.alias == alias)
            .map(account)
            .ok_or_else(|| account_missing(alias))
    }

    /// An account by id (v3 `account_id`).
    pub fn account_by_id(&self, id: i64) -> Result<Account, JobError> {
        if self.world.accounts.is_empty() {
            return Ok(Account {
                id,
                alias: "root".into(),
            });
        }
        self.world
            .accounts
            .iter()
            .find(|a| a.id == id)
            .map(account)
            .ok_or_else(|| account_missing(&id.to_string()))
    }

    /// The id and system name of the account with this alias, as plan details show
    /// it (`{id, name}`); an alias the world does not list has id 0.
    pub fn account_view(&self, alias: &str) -> (i64, String) {
        self.world
            .accounts
            .iter()
            .find(|a| a.alias == alias)
            .map(|a| (a.id, a.name.clone().unwrap_or_else(|| a.alias.clone())))
            .unwrap_or_else(|| (0, alias.to_owned()))
    }

    /// A third-party file source by id or code (1244xxx-free: JOB's file gateway says
    /// the source does not exist with 1241005 on the field).
    pub fn third_party_source(
        &self,
        id: Option<i64>,
        code: Option<&str>,
    ) -> Result<&ThirdPartySourceDef, JobError> {
        self.world
            .file_sources
            .iter()
            .find(|s| match (id, code) {
                (Some(id), _) => i64::from(s.id) == id,
                (None, Some(code)) => s.code == code,
                (None, None) => false,
            })
            .ok_or_else(|| {
                JobError::illegal(if id.is_some() {
                    "file_source_id"
                } else {
                    "file_source_code"
                })
            })
    }

    /// The containers that pass any of `filters`, as hosts, in world order.
    pub fn containers(&self, filters: &[ContainerFilter]) -> Vec<Host> {
        self.world
            .containers
            .iter()
            .filter(|c| filters.iter().any(|f| c.matches(f)))
            .map(|c| {
                let (addr, host_id) = world_objects::container_host(c.id);
                Host { addr, host_id }
            })
            .collect()
    }

    /// The container a host id stands for.
    pub fn container(&self, host_id: u64) -> Option<&ContainerDef> {
        let id = world_objects::container_of(host_id)?;
        self.world.containers.iter().find(|c| c.id == id)
    }

    /// A script version by id.
    pub fn script_version(&self, version_id: i64) -> Option<&ScriptDef> {
        self.world
            .scripts
            .iter()
            .find(|s| s.version_id == version_id)
    }

    /// The online version of a script id (the newest online one).
    pub fn script_online(&self, script_id: &str) -> Option<&ScriptDef> {
        self.world
            .scripts
            .iter()
            .filter(|s| s.script_id.as_deref() == Some(script_id) && s.online)
            .max_by_key(|s| s.version_id)
    }

    /// A plan visible in `scope` (`kind`, `id`).
    pub fn plan(&self, id: i64, kind: &str, scope_id: &str) -> Option<&PlanDef> {
        self.plans_in(kind, scope_id)
            .into_iter()
            .find(|p| p.id == id)
    }

    /// Plans visible in a scope.
    pub fn plans_in(&self, kind: &str, scope_id: &str) -> Vec<&PlanDef> {
        self.world
            .plans
            .iter()
            .filter(|p| {
                p.scope
                    .as_ref()
                    .is_none_or(|s| s.kind == kind && s.id == scope_id)
            })
            .collect()
    }
}

/// Registers the hosts that third-party file sources and containers stand on, and adds
/// them to the world's hosts so that their files are seeded like any host's.
fn stand_ins(world: &mut World, registry: &mut Registry) {
    let mut extra = Vec::new();
    for source in &world.file_sources {
        let (addr, id) = world_objects::file_source_host(source.id);
        let files = source
            .files
            .iter()
            .map(|(object, content)| (world_objects::object_path(object), content.clone()))
            .collect();
        extra.push((addr, id, files));
    }
    for container in &world.containers {
        let (addr, id) = world_objects::container_host(container.id);
        extra.push((addr, id, container.files.clone()));
    }
    for (addr, id, files) in extra {
        registry.by_addr.insert(addr.clone(), id);
        registry.by_id.insert(id, addr.clone());
        world.hosts.push(HostDef {
            host_id: Some(id),
            cloud: addr.cloud_id,
            ip: addr.ip,
            files,
        });
    }
}

fn account(def: &AccountDef) -> Account {
    Account {
        id: def.id,
        alias: def.alias.clone(),
    }
}

fn account_missing(name: &str) -> JobError {
    JobError::new(
        code::ACCOUNT_NOT_EXIST,
        format!("Account [{name}] does not exist"),
    )
}

fn describe(sel: &HostSel) -> String {
    match sel {
        HostSel::Id(id) => format!("host_id {id}"),
        HostSel::Addr(addr) => addr.to_string(),
    }
}

fn invalid_hosts(list: &[String]) -> JobError {
    JobError::new(
        code::HOST_INVALID,
        format!(
            "Hosts invalid. Reason: not exist in CMDB. Invalid {} hosts:{}",
            list.len(),
            list.join(",")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(yaml: &str) -> Inventory {
        Inventory::new(World::parse(yaml).unwrap()).unwrap()
    }

    #[test]
    fn lists_merge_and_dedupe() {
        let i = inv(
            "hosts: [{host_id: 101, ip: 10.0.0.1}, {host_id: 102, ip: 10.0.0.2}]\n\
             dynamic_groups: [{id: g, hosts: [101, '0:10.0.0.3']}]",
        );
        let spec = TargetSpec {
            hosts: vec![
                HostSel::Id(102),
                HostSel::Addr(HostAddr::parse("10.0.0.1").unwrap()),
            ],
            groups: vec!["g".into(), "missing".into()],
            ..TargetSpec::default()
        };
        let hosts = i.resolve(&spec, &HashMap::new()).unwrap();
        let ips: Vec<_> = hosts.iter().map(|h| h.addr.ip.as_str()).collect();
        assert_eq!(ips, ["10.0.0.2", "10.0.0.1", "10.0.0.3"]);
    }

    #[test]
    fn unknown_host_ids_map_to_loopback_and_strict_refuses() {
        let i = inv("");
        assert_eq!(i.host(&HostSel::Id(258)).unwrap().addr.ip, "127.0.1.2");
        let strict = inv("settings: {strict_hosts: true}");
        assert_eq!(strict.host(&HostSel::Id(5)).unwrap_err().code, 1_244_002);
    }
}
