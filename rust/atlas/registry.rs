//! The loaded atlases as one immutable, compiled snapshot. Loading,
//! replacing and unloading build a new snapshot and swap it in whole, so a
//! resolve sees the old set or the new one, never a mix, and holds no lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::atlas::keys::closest;
use crate::atlas::limits::{distance, AtlasLimits};
use crate::atlas::model::Atlas;
use crate::atlas::pattern::Pattern;
use crate::error::{CoreError, Fault, Result};
use crate::ids::FastMap;

/// A policy by position: atlas index in the snapshot, policy index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    pub atlas: u32,
    pub policy: u32,
}

/// A context pack by position.
#[derive(Debug, Clone, Copy)]
pub struct PackRef {
    pub atlas: u32,
    pub pack: u32,
}

#[derive(Debug, Default)]
pub struct Compiled {
    /// Per atlas, per action: the policies of every loaded atlas that name
    /// it, in the order resolve checks them.
    pub action_policies: Vec<Vec<Vec<PolicyRef>>>,
    /// Per atlas: capability id -> indices of its actions.
    pub capabilities: Vec<FastMap<Arc<str>, Vec<u32>>>,
    /// Every pack, by priority descending, ties in declaration order.
    pub packs: Vec<PackRef>,
    /// Any pack has a keyword condition (so the goal needs lower-casing).
    pub any_keywords: bool,
    /// Every action id -> (atlas, action) position.
    pub actions: FastMap<Arc<str>, (u32, u32)>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub atlases: Vec<Arc<Atlas>>,
    pub index: FastMap<Arc<str>, u32>,
    pub compiled: Compiled,
}

impl Snapshot {
    fn new(atlases: Vec<Arc<Atlas>>) -> Snapshot {
        let index = atlases
            .iter()
            .enumerate()
            .map(|(i, a)| (Arc::clone(&a.atlas_id), i as u32))
            .collect();
        let compiled = compile(&atlases);
        Snapshot {
            atlases,
            index,
            compiled,
        }
    }

    pub fn get(&self, atlas_id: &str) -> Option<&Arc<Atlas>> {
        self.index.get(atlas_id).map(|&i| &self.atlases[i as usize])
    }

    pub fn policy(&self, r: PolicyRef) -> &crate::atlas::policy::Policy {
        &self.atlases[r.atlas as usize].policies[r.policy as usize]
    }
}

/// Policies grouped by the shape of their patterns, for fast matching.
#[derive(Default)]
struct PatternIndex {
    every: Vec<PolicyRef>,
    exact: HashMap<String, Vec<PolicyRef>>,
    prefix: HashMap<String, Vec<PolicyRef>>,
    suffix: HashMap<String, Vec<PolicyRef>>,
    glob: Vec<(Pattern, PolicyRef)>,
}

impl PatternIndex {
    fn build(atlases: &[Arc<Atlas>]) -> Self {
        let mut ix = PatternIndex::default();
        for (ai, atlas) in atlases.iter().enumerate() {
            for (pi, p) in atlas.policies.iter().enumerate() {
                let r = PolicyRef {
                    atlas: ai as u32,
                    policy: pi as u32,
                };
                let Some(patterns) = &p.patterns else {
                    ix.every.push(r);
                    continue;
                };
                for pat in patterns {
                    match pat {
                        Pattern::Any => ix.every.push(r),
                        Pattern::Exact(s) => ix.exact.entry(s.clone()).or_default().push(r),
                        Pattern::Prefix(s) => ix.prefix.entry(s.clone()).or_default().push(r),
                        Pattern::Suffix(s) => ix.suffix.entry(s.clone()).or_default().push(r),
                        Pattern::Glob { .. } => ix.glob.push((pat.clone(), r)),
                    }
                }
            }
        }
        ix
    }

    fn matching(&self, id: &str, out: &mut Vec<PolicyRef>) {
        out.clear();
        out.extend_from_slice(&self.every);
        if let Some(v) = self.exact.get(id) {
            out.extend_from_slice(v);
        }
        if !self.prefix.is_empty() || !self.suffix.is_empty() {
            for (i, _) in id.char_indices().chain(std::iter::once((id.len(), ' '))) {
                if let Some(v) = self.prefix.get(&id[..i]) {
                    out.extend_from_slice(v);
                }
                if let Some(v) = self.suffix.get(&id[i..]) {
                    out.extend_from_slice(v);
                }
            }
        }
        out.extend(
            self.glob
                .iter()
                .filter(|(p, _)| p.matches(id))
                .map(|(_, r)| *r),
        );
        out.sort_unstable();
        out.dedup();
    }
}

fn compile(atlases: &[Arc<Atlas>]) -> Compiled {
    let ix = PatternIndex::build(atlases);
    let mut scratch = Vec::new();
    let order = |r: &PolicyRef| {
        let p = &atlases[r.atlas as usize].policies[r.policy as usize];
        (p.kind, std::cmp::Reverse(p.priority), r.atlas, r.policy)
    };
    let action_policies = atlases
        .iter()
        .map(|a| {
            a.actions
                .iter()
                .map(|act| {
                    ix.matching(&act.action_id, &mut scratch);
                    let mut list = scratch.clone();
                    list.sort_by_key(order);
                    list
                })
                .collect()
        })
        .collect();
    let capabilities = atlases
        .iter()
        .map(|a| {
            let pos: HashMap<&str, u32> = a
                .actions
                .iter()
                .enumerate()
                .map(|(i, x)| (&*x.action_id, i as u32))
                .collect();
            a.capabilities
                .iter()
                .map(|c| {
                    let mut idx: Vec<u32> = c
                        .actions
                        .iter()
                        .filter_map(|x| pos.get(&**x).copied())
                        .collect();
                    idx.sort_unstable();
                    (Arc::clone(&c.capability_id), idx)
                })
                .collect()
        })
        .collect();
    let mut packs: Vec<PackRef> = atlases
        .iter()
        .enumerate()
        .flat_map(|(ai, a)| {
            (0..a.packs.len()).map(move |pi| PackRef {
                atlas: ai as u32,
                pack: pi as u32,
            })
        })
        .collect();
    packs.sort_by_key(|r| {
        std::cmp::Reverse(atlases[r.atlas as usize].packs[r.pack as usize].priority)
    });
    let any_keywords = atlases
        .iter()
        .any(|a| a.packs.iter().any(|p| p.keywords.is_some()));
    let actions = atlases
        .iter()
        .enumerate()
        .flat_map(|(ai, a)| {
            a.actions
                .iter()
                .enumerate()
                .map(move |(i, x)| (Arc::clone(&x.action_id), (ai as u32, i as u32)))
        })
        .collect();
    Compiled {
        action_policies,
        capabilities,
        packs,
        any_keywords,
        actions,
    }
}

/// The set of loaded atlases, and the limits new ones are held to.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
    limits: ArcSwap<AtlasLimits>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// The limits atlases are loaded (and resolves are made) under.
    #[inline]
    pub fn limits(&self) -> AtlasLimits {
        **self.limits.load()
    }

    /// Changes the limits; atlases loaded already stay loaded.
    pub fn set_limits(&self, limits: AtlasLimits) {
        self.limits.store(Arc::new(limits));
    }

    /// The current snapshot (cheap; hold it for the length of one resolve).
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Loads an atlas; an id already loaded is a conflict unless `replace`.
    pub fn load(&self, atlas: Atlas, replace: bool) -> Result<Arc<Atlas>> {
        let _w = self.writer.lock();
        let cur = self.current.load();
        let id = Arc::clone(&atlas.atlas_id);
        let existing = cur.index.get(&id).copied();
        if existing.is_some() && !replace {
            return Err(CoreError::AtlasConflict(id.to_string()));
        }
        let claims = Claims::of(&atlas.manifest);
        let mut faults = self.cross_faults(&cur, &claims);
        let unmatched = pattern_faults(&cur, &claims);
        if !faults.is_empty() {
            faults.extend(unmatched);
            return Err(CoreError::AtlasInvalid(faults));
        }
        if !unmatched.is_empty() {
            return Err(CoreError::PolicyMatchesNothing(unmatched));
        }
        let atlas = Arc::new(atlas);
        let mut list: Vec<Arc<Atlas>> = cur.atlases.clone();
        match existing {
            Some(i) => list[i as usize] = Arc::clone(&atlas),
            None => list.push(Arc::clone(&atlas)),
        }
        self.current.store(Arc::new(Snapshot::new(list)));
        Ok(atlas)
    }

    pub fn unload(&self, atlas_id: &str) -> Result<Arc<Atlas>> {
        let _w = self.writer.lock();
        let cur = self.current.load();
        let Some(&i) = cur.index.get(atlas_id) else {
            return Err(CoreError::AtlasNotFound(atlas_id.to_string(), None));
        };
        let mut list = cur.atlases.clone();
        let gone = list.remove(i as usize);
        self.current.store(Arc::new(Snapshot::new(list)));
        Ok(gone)
    }
}

/// What a manifest asks of the other loaded atlases, read from its raw
/// JSON (so these faults are reported even when the manifest has others).
pub struct Claims<'a> {
    pub atlas_id: Option<&'a str>,
    pub dependencies: Vec<(&'a str, Option<semver::VersionReq>)>,
    pub action_ids: Vec<(usize, &'a str)>,
    /// Every pattern of the policies (their `actions`, and a budget's
    /// `costs` keys) with its JSON pointer.
    pub patterns: Vec<(String, &'a str)>,
}

impl<'a> Claims<'a> {
    pub fn of(manifest: &'a serde_json::Value) -> Claims<'a> {
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        // A range that does not parse is the manifest's own fault.
                        let req = semver::VersionReq::parse(v.as_str()?).ok()?;
                        Some((k.as_str(), Some(req)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let actions = manifest
            .get("actions")
            .and_then(|a| a.as_array())
            .map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(i, a)| {
                        a.get("action_id").and_then(|x| x.as_str()).map(|x| (i, x))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Claims {
            atlas_id: manifest.get("atlas_id").and_then(|x| x.as_str()),
            dependencies: deps,
            action_ids: actions,
            patterns: policy_patterns(manifest),
        }
    }
}

impl Registry {
    /// Faults of a manifest against the atlases loaded now (other than the
    /// one it would replace): unknown or out-of-range dependencies, action
    /// ids another atlas defines.
    pub fn claim_faults(&self, claims: &Claims<'_>) -> Vec<Fault> {
        let cur = self.current.load_full();
        let mut faults = self.cross_faults(&cur, claims);
        faults.extend(pattern_faults(&cur, claims));
        faults
    }

    fn cross_faults(&self, cur: &Snapshot, claims: &Claims<'_>) -> Vec<Fault> {
        let others: Vec<&Arc<Atlas>> = cur
            .atlases
            .iter()
            .filter(|a| Some(&*a.atlas_id) != claims.atlas_id)
            .collect();
        let mut faults = Vec::new();
        for (dep, req) in &claims.dependencies {
            let path = crate::json::fields::at("/dependencies", dep);
            match (others.iter().find(|a| &*a.atlas_id == *dep), req) {
                (None, _) => faults.push(Fault::new(
                    path,
                    format!("unknown dependency {dep:?}: load it first"),
                )),
                (Some(a), Some(req)) if !req.matches(&a.version) => faults.push(Fault::new(
                    path,
                    format!(
                        "dependency {dep:?} is loaded at {} which is not in {req}",
                        a.version
                    ),
                )),
                _ => {}
            }
        }
        let taken: HashMap<&str, &str> = others
            .iter()
            .flat_map(|a| a.actions.iter().map(move |x| (&*x.action_id, &*a.atlas_id)))
            .collect();
        let mut seen = HashSet::new();
        for (i, id) in &claims.action_ids {
            if let Some(owner) = taken.get(id) {
                if seen.insert(*id) {
                    faults.push(Fault::new(
                        format!("/actions/{i}/action_id"),
                        format!("action {id:?} is already defined by atlas {owner}"),
                    ));
                }
            }
        }
        faults
    }
}

/// The patterns of a manifest's policies, read from its raw JSON.
fn policy_patterns(manifest: &serde_json::Value) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let Some(list) = manifest.get("policies").and_then(|p| p.as_array()) else {
        return out;
    };
    for (i, p) in list.iter().enumerate() {
        if let Some(pats) = p.get("actions").and_then(|a| a.as_array()) {
            for (j, pat) in pats.iter().enumerate() {
                if let Some(pat) = pat.as_str() {
                    out.push((format!("/policies/{i}/actions/{j}"), pat));
                }
            }
        }
        let costs = p
            .get("parameters")
            .filter(|_| p.get("type").and_then(|t| t.as_str()) == Some("budget"))
            .and_then(|x| x.get("costs"))
            .and_then(|c| c.as_object());
        for key in costs.into_iter().flat_map(|c| c.keys()) {
            let path = crate::json::fields::at(&format!("/policies/{i}/parameters/costs"), key);
            out.push((path, key.as_str()));
        }
    }
    out
}

/// The action ids of the atlases `deps` names, and of theirs in turn,
/// among those loaded in `cur` (other than `own`, which is being loaded).
fn dependency_actions<'s>(cur: &'s Snapshot, own: Option<&str>, deps: &[&str]) -> Vec<&'s str> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = deps.to_vec();
    let mut out = Vec::new();
    while let Some(id) = todo.pop() {
        if Some(id) == own || !seen.insert(id) {
            continue;
        }
        let Some(a) = cur.get(id) else { continue };
        out.extend(a.actions.iter().map(|x| &*x.action_id));
        todo.extend(a.dependencies.iter().map(|(d, _)| d.as_str()));
    }
    out
}

/// `POLICY_MATCHES_NOTHING`: a policy pattern that matches no action of
/// its atlas or of the atlases it depends on (a misspelt pattern would
/// otherwise leave the policy silently idle). Patterns starting with `*`
/// are cross-atlas guard rails and are not checked.
fn pattern_faults(cur: &Snapshot, claims: &Claims<'_>) -> Vec<Fault> {
    if claims.patterns.is_empty() {
        return Vec::new();
    }
    let deps: Vec<&str> = claims.dependencies.iter().map(|(d, _)| *d).collect();
    let mut ids: Vec<&str> = claims.action_ids.iter().map(|(_, id)| *id).collect();
    let mut seen: HashSet<&str> = ids.iter().copied().collect();
    for id in dependency_actions(cur, claims.atlas_id, &deps) {
        if seen.insert(id) {
            ids.push(id);
        }
    }
    let mut faults = Vec::new();
    for (path, text) in &claims.patterns {
        // A pattern that does not parse is the manifest's own fault; one
        // that starts with `*` (`*`, `*.delete`) names no namespace and is
        // written for the actions of any atlas, loaded now or later.
        let Some(p) = Pattern::action(text).filter(|_| !text.starts_with('*')) else {
            continue;
        };
        let found = match &p {
            Pattern::Exact(id) => seen.contains(id.as_str()),
            _ => ids.iter().any(|id| p.matches(id)),
        };
        if found {
            continue;
        }
        faults.push(Fault::new(path.clone(), nothing_matched(text, &ids)));
    }
    faults
}

/// The message of a pattern that matches nothing, naming the closest ids.
fn nothing_matched(text: &str, ids: &[&str]) -> String {
    let head =
        format!("pattern {text:?} matches no action of this atlas or of the atlases it depends on");
    if ids.is_empty() {
        return format!("{head}, which have no actions (declare the atlas that defines them in \"dependencies\")");
    }
    if let Some(near) = closest(text, ids.iter().copied()) {
        return format!("{head} (did you mean {near:?}?)");
    }
    let mut by: Vec<(usize, &str)> = ids.iter().map(|id| (distance(text, id), *id)).collect();
    by.sort();
    let names: Vec<String> = by.iter().take(3).map(|(_, id)| format!("{id:?}")).collect();
    format!("{head}; the closest action ids are {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn atlas(v: serde_json::Value) -> Atlas {
        Atlas::build(Arc::new(v), None).expect("valid")
    }

    fn manifest(id: &str, actions: &[&str], patterns: &[&str]) -> serde_json::Value {
        json!({
            "atlas_version": "1.0", "atlas_id": id, "version": "1.0.0", "name": "T",
            "actions": actions.iter().map(|a| json!({"action_id": a, "name": a})).collect::<Vec<_>>(),
            "policies": [{"policy_id": "p", "type": "deny", "actions": patterns}],
        })
    }

    #[test]
    fn a_misspelt_pattern_matches_nothing_and_names_the_closest_id() {
        let reg = Registry::new();
        let err = reg
            .load(
                atlas(manifest("org.t.a", &["email.send"], &["email.sned"])),
                false,
            )
            .unwrap_err();
        assert_eq!(err.code(), "POLICY_MATCHES_NOTHING");
        assert_eq!(err.path(), Some("/policies/0/actions/0"));
        assert!(err.faults()[0]
            .message
            .contains("did you mean \"email.send\"?"));
        assert!(reg.snapshot().atlases.is_empty());
    }

    #[test]
    fn patterns_may_match_dependencies_and_star_patterns_are_not_checked() {
        let reg = Registry::new();
        reg.load(
            atlas(manifest("org.t.core", &["ledger.post"], &["ledger.*"])),
            false,
        )
        .unwrap();
        let mut guard = manifest("org.t.guard", &[], &["ledger.post", "*.delete"]);
        guard["dependencies"] = json!({"org.t.core": "^1"});
        reg.load(atlas(guard), false).unwrap();
        let stray = manifest("org.t.stray", &[], &["ledger.post"]);
        let err = reg.load(atlas(stray), false).unwrap_err();
        assert_eq!(err.code(), "POLICY_MATCHES_NOTHING");
        assert!(err.faults()[0].message.contains("dependencies"));
    }

    #[test]
    fn a_far_pattern_names_the_three_closest_ids() {
        let msg = nothing_matched("zz.top", &["a.b", "c.d", "e.f", "g.h"]);
        assert!(msg.contains("the closest action ids are"), "{msg}");
        assert_eq!(msg.matches('"').count(), 8, "{msg}");
    }
}
