//! The `spark` mode: what `spark-submit --packages` resolves through Apache Ivy 2.5.
//!
//! Spark builds a module whose dependencies are the `--packages` coordinates (not forced,
//! configuration `default`), excludes `*:scala-library` and its own modules, and resolves with
//! Ivy's defaults. What that means, and what this module reproduces:
//!
//! - Every dependency a POM declares is *forced* (Ivy's `PomDependencyDescriptor`). Ivy's
//!   `latest-revision` conflict manager settles a conflict at every ancestor of the conflicting
//!   nodes: when the ancestor itself declares the module, its (forced) version wins there;
//!   otherwise the latest version (Ivy's ordering) wins. The user's own coordinates hang off
//!   Spark's module, which forces nothing, so a newer version found deeper beats them.
//! - A POM's dependency management overrides the versions of that module's whole subtree
//!   (`OverrideDependencyDescriptorMediator`); the ancestor nearest the root applies last, so it
//!   wins.
//! - Configuration `default` is `runtime` plus the artifact: `compile` and `runtime`
//!   dependencies, never `provided`, `test`, `system` or optional ones.
//! - Exclusions accumulate along a path; a module excluded on one path still comes on another.
//! - A node whose every caller was evicted is evicted with it ("transitively evicted"), so the
//!   selection is recomputed over what stays reachable until it no longer changes.
//! - A relocated POM becomes a module with one dependency, on its new coordinates.
//! - Artifacts: the main artifact of the packaging (`jar` for `jar`, `bundle`, `ejb`,
//!   `maven-plugin` and the like; the packaging's name otherwise; for `pom`, a jar only when
//!   the repository has one), or what a dependency's `type`/`classifier` asks for
//!   (`test-jar` is the `tests` jar). Spark keeps only `.jar` files.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::coords::{Coordinate, Exclusion};
use crate::pom::Dependency;
use crate::resolve::{Models, PomSource, ResolveError, Resolved, type_artifact};
use crate::version::ivy_compare;

/// Spark's own modules, which `--packages` never brings (`MavenUtils.addExclusionRules`).
pub const SPARK_COMPONENTS: [&str; 15] = [
    "catalyst",
    "core",
    "graphx",
    "kvstore",
    "launcher",
    "mllib",
    "mllib-local",
    "network-common",
    "network-shuffle",
    "repl",
    "sketch",
    "sql",
    "streaming",
    "tags",
    "unsafe",
];

/// The exclusions Spark adds to every `--packages` resolution: `*:scala-library` and
/// `org.apache.spark:spark-<component>_*`.
pub fn builtin_exclusions() -> Vec<Exclusion> {
    let mut out = vec![Exclusion {
        group: "*".to_owned(),
        artifact: "scala-library".to_owned(),
    }];
    out.extend(SPARK_COMPONENTS.iter().map(|c| Exclusion {
        group: "org.apache.spark".to_owned(),
        artifact: format!("spark-{c}_*"),
    }));
    out
}

/// Packagings whose artifact is a `.jar` (Ivy's `PomModuleDescriptorBuilder.JAR_PACKAGINGS`).
const JAR_PACKAGINGS: [&str; 8] = [
    "ejb",
    "bundle",
    "maven-plugin",
    "eclipse-plugin",
    "jbi-component",
    "jbi-shared-library",
    "orbit",
    "hk2-jar",
];

type Gav = (String, String, String);
type Module = (String, String);

/// What a dependency asks of a module: its main artifact, or a given extension and classifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Wanted {
    Main,
    Artifact(String, Option<String>),
}

impl Wanted {
    fn of(kind: Option<&str>, classifier: Option<&str>) -> Self {
        match (kind.unwrap_or("jar"), classifier) {
            ("jar", None) => Self::Main,
            (kind, classifier) => {
                let (extension, classifier) = type_artifact(kind, classifier, &JAR_PACKAGINGS);
                Self::Artifact(extension, classifier)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Edge {
    child: Gav,
    forced: bool,
    wanted: Wanted,
}

#[derive(Default)]
struct Node {
    edges: Vec<Edge>,
    packaging: String,
    relocated: bool,
    /// The first path found to this node (root first), for messages and the tree.
    path: Vec<String>,
}

struct Visit {
    gav: Gav,
    path: Vec<String>,
    /// Versions the ancestors' dependency management imposes (the farthest ancestor's wins).
    overrides: Arc<BTreeMap<Module, String>>,
    /// The exclusions accumulated along the path (global ones included).
    exclusions: Arc<Vec<Exclusion>>,
    /// The exclusions of the dependency that leads here, alone.
    own: Arc<Vec<Exclusion>>,
}

fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn gav_text(gav: &Gav) -> String {
    format!("{}:{}:{}", gav.0, gav.1, gav.2)
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "the request".to_owned()
    } else {
        path.join(" -> ")
    }
}

/// What one visit of a node finds: the node's facts, its edges and the visits of its children.
struct Expansion {
    packaging: String,
    relocated: bool,
    edges: Vec<Edge>,
    children: Vec<Visit>,
    /// Dependencies whose version requirement nothing satisfies (Ivy reports them all).
    unresolved: Vec<ResolveError>,
}

/// Reads `visit`'s module and lists its children (as seen on this visit's path: the
/// ancestors' exclusions and managed versions apply).
async fn expand<S: PomSource>(
    models: &Models<'_, S>,
    visit: &Visit,
    path_exclusions: bool,
) -> Result<Expansion, ResolveError> {
    let here = gav_text(&visit.gav);
    let mut pom = models
        .effective(
            &visit.gav.0,
            &visit.gav.1,
            &visit.gav.2,
            &path_text(&visit.path),
        )
        .await?;
    let mut out = Expansion {
        packaging: pom.packaging.clone().unwrap_or_else(|| "jar".to_owned()),
        relocated: false,
        edges: Vec::new(),
        children: Vec::new(),
        unresolved: Vec::new(),
    };
    let mut child_path = visit.path.clone();
    child_path.push(here);
    if let Some(r) = pom.relocation.clone() {
        let target = (
            r.group.clone().unwrap_or_else(|| visit.gav.0.clone()),
            r.artifact.clone().unwrap_or_else(|| visit.gav.1.clone()),
            r.version.clone().unwrap_or_else(|| visit.gav.2.clone()),
        );
        if target != visit.gav {
            out.relocated = true;
            if target.0 == visit.gav.0 && target.1 == visit.gav.1 {
                // Only the version moves: Ivy ends up with the new version's dependencies and
                // neither version's artifact.
                pom = models
                    .effective(&target.0, &target.1, &target.2, &path_text(&child_path))
                    .await?;
            } else {
                out.edges.push(Edge {
                    child: target.clone(),
                    forced: true,
                    wanted: Wanted::Main,
                });
                out.children.push(Visit {
                    gav: target,
                    path: child_path,
                    overrides: visit.overrides.clone(),
                    exclusions: visit.exclusions.clone(),
                    own: Arc::new(Vec::new()),
                });
                return Ok(out);
            }
        }
    }
    // What this module manages overrides its subtree, under what its ancestors manage.
    let managed: Vec<&Dependency> = pom
        .dependency_management
        .iter()
        .filter(|m| m.version.is_some() && m.scope.as_deref() != Some("import"))
        .collect();
    let child_overrides = if managed.is_empty() {
        visit.overrides.clone()
    } else {
        let mut map: BTreeMap<Module, String> = managed
            .iter()
            .map(|m| {
                (
                    (m.group.clone(), m.artifact.clone()),
                    m.version.clone().unwrap_or_default(),
                )
            })
            .collect();
        map.extend(visit.overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Arc::new(map)
    };
    let context = path_text(&child_path);
    for dependency in &pom.dependencies {
        if !matches!(
            dependency.scope.as_deref().unwrap_or("compile"),
            "compile" | "runtime"
        ) || dependency.optional.as_deref() == Some("true")
            || path_exclusions
                && visit
                    .exclusions
                    .iter()
                    .any(|e| e.matches(&dependency.group, &dependency.artifact))
        {
            continue;
        }
        let mut d = dependency.clone();
        if let Some(v) = visit.overrides.get(&(d.group.clone(), d.artifact.clone())) {
            d.version = Some(v.clone());
        }
        let version = match models.pick_version(&d, &context).await {
            Ok(v) => v,
            Err(e @ ResolveError::NoVersion { .. }) => {
                out.unresolved.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let child = (d.group.clone(), d.artifact.clone(), version);
        let edge = Edge {
            child: child.clone(),
            forced: true,
            wanted: Wanted::of(d.kind.as_deref(), d.classifier.as_deref()),
        };
        if !out.edges.contains(&edge) {
            out.edges.push(edge);
        }
        if child_path.iter().any(|p| *p == gav_text(&child)) {
            continue; // a cycle
        }
        let exclusions = if d.exclusions.is_empty() {
            visit.exclusions.clone()
        } else {
            let mut all = (*visit.exclusions).clone();
            all.extend(d.exclusions.iter().cloned());
            Arc::new(all)
        };
        out.children.push(Visit {
            gav: child,
            path: child_path.clone(),
            overrides: child_overrides.clone(),
            exclusions,
            own: Arc::new(d.exclusions.clone()),
        });
    }
    Ok(out)
}

/// Resolves `roots` as `spark-submit --packages` does; `exclusions` are global (Spark's built-in
/// ones are not added here: see [`builtin_exclusions`]). Returns every artifact of the selected
/// modules, jars or not, in the order they were first reached.
pub async fn resolve_spark<S: PomSource>(
    models: &Models<'_, S>,
    roots: &[Coordinate],
    exclusions: &[Exclusion],
) -> Result<Vec<Resolved>, ResolveError> {
    let global = Arc::new(exclusions.to_vec());
    let mut root_edges: Vec<Edge> = Vec::new();
    let mut first: Vec<Visit> = Vec::new();
    let empty = Arc::new(BTreeMap::new());
    for c in roots {
        if global.iter().any(|e| e.matches(&c.group, &c.artifact)) {
            continue;
        }
        let d = Dependency {
            group: c.group.clone(),
            artifact: c.artifact.clone(),
            version: Some(c.version.clone()),
            ..Dependency::default()
        };
        let version = models.pick_version(&d, "the request").await?;
        let gav = (c.group.clone(), c.artifact.clone(), version);
        let wanted = if c.extension == "jar" && c.classifier.is_none() {
            Wanted::Main
        } else {
            Wanted::Artifact(c.extension.clone(), c.classifier.clone())
        };
        root_edges.push(Edge {
            child: gav.clone(),
            forced: false,
            wanted,
        });
        first.push(Visit {
            gav,
            path: Vec::new(),
            overrides: empty.clone(),
            exclusions: global.clone(),
            own: Arc::new(Vec::new()),
        });
    }

    // 1. Fetch: breadth first, every distinct visit, the POMs of a level concurrently. This
    //    reads a superset of what Ivy reads, so that step 2 finds everything in memory.
    let mut seen: HashSet<(Gav, u64, u64)> = HashSet::new();
    let mut frontier: Vec<&Visit> = first.iter().collect();
    let mut levels: Vec<Vec<Visit>> = Vec::new();
    while !frontier.is_empty() {
        let expansions =
            futures::future::join_all(frontier.iter().map(|v| expand(models, v, true))).await;
        let mut next = Vec::new();
        for e in expansions {
            for child in e?.children {
                let key = (
                    child.gav.clone(),
                    fingerprint(&*child.overrides),
                    fingerprint(&*child.exclusions),
                );
                if seen.insert(key) {
                    next.push(child);
                }
            }
        }
        levels.push(next);
        frontier = levels
            .last()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
    }
    drop(levels);

    // 2. Ivy's traversal: depth first in declaration order, each module version's dependencies
    //    computed once, on its first visit. Computing them makes the module a caller of each
    //    child at once (before any is visited), and a child is excluded when every caller known
    //    at that moment excludes it: through its own dependency's exclusions, or, when that says
    //    nothing, through all of that caller's callers (the root through the global ones).
    let mut nodes: HashMap<Gav, Node> = HashMap::new();
    let mut order: Vec<Gav> = Vec::new();
    let mut callers: Callers = HashMap::new();
    for v in &first {
        callers
            .entry(v.gav.clone())
            .or_default()
            .push((None, v.own.clone()));
    }
    let mut unresolved: Vec<ResolveError> = Vec::new();
    let mut stack: Vec<Visit> = first.into_iter().rev().collect();
    while let Some(visit) = stack.pop() {
        if nodes.contains_key(&visit.gav) {
            continue;
        }
        let e = expand(models, &visit, false).await?;
        for u in e.unresolved {
            if !unresolved.contains(&u) {
                unresolved.push(u);
            }
        }
        let excluded = |g: &Gav| {
            excludes(
                &callers,
                &global,
                &visit.gav,
                &g.0,
                &g.1,
                &mut HashSet::new(),
            )
        };
        let edges: Vec<Edge> = e
            .edges
            .into_iter()
            .filter(|x| !excluded(&x.child))
            .collect();
        let children: Vec<Visit> = e
            .children
            .into_iter()
            .filter(|c| !excluded(&c.gav))
            .collect();
        for c in &children {
            callers
                .entry(c.gav.clone())
                .or_default()
                .push((Some(visit.gav.clone()), c.own.clone()));
        }
        order.push(visit.gav.clone());
        nodes.insert(
            visit.gav.clone(),
            Node {
                edges,
                packaging: e.packaging,
                relocated: e.relocated,
                path: visit.path,
            },
        );
        stack.extend(children.into_iter().rev());
    }

    match unresolved.len() {
        0 => {}
        1 => return Err(unresolved.remove(0)),
        _ => return Err(ResolveError::Several(unresolved)),
    }
    let evicted = settle(&nodes, &root_edges);
    let reach = reachable(&nodes, &root_edges, &evicted);
    let selected = |gav: &Gav| reach.contains(gav) && !evicted.contains(gav);

    // The artifacts each selected module is asked for, by the callers that stay. A module the
    // request names twice with different versions gets none from the request: Spark's module
    // then has two dependencies on it, and Ivy retrieves no artifact for the winner.
    let mut root_versions: HashMap<Module, HashSet<&str>> = HashMap::new();
    for e in &root_edges {
        root_versions
            .entry((e.child.0.clone(), e.child.1.clone()))
            .or_default()
            .insert(&e.child.2);
    }
    let root_edges_kept: Vec<Edge> = root_edges
        .iter()
        .filter(|e| root_versions[&(e.child.0.clone(), e.child.1.clone())].len() == 1)
        .cloned()
        .collect();
    let mut wanted: HashMap<Gav, Vec<Wanted>> = HashMap::new();
    let callers = std::iter::once(&root_edges_kept).chain(
        order
            .iter()
            .filter(|g| selected(g))
            .filter_map(|g| nodes.get(g).map(|n| &n.edges)),
    );
    for edges in callers {
        for e in edges {
            if selected(&e.child) {
                let list = wanted.entry(e.child.clone()).or_default();
                if !list.contains(&e.wanted) {
                    list.push(e.wanted.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    for gav in order.iter().filter(|g| selected(g)) {
        let node = &nodes[gav];
        if node.relocated {
            continue;
        }
        for w in wanted.get(gav).into_iter().flatten() {
            let (extension, classifier, optional) = match w {
                Wanted::Main => match node.packaging.as_str() {
                    "pom" => ("jar".to_owned(), None, true),
                    p if p == "jar" || JAR_PACKAGINGS.contains(&p) => {
                        ("jar".to_owned(), None, false)
                    }
                    p => (p.to_owned(), None, false),
                },
                Wanted::Artifact(e, c) => (e.clone(), c.clone(), false),
            };
            out.push(Resolved {
                coordinate: Coordinate {
                    group: gav.0.clone(),
                    artifact: gav.1.clone(),
                    version: gav.2.clone(),
                    extension,
                    classifier,
                },
                scope: "runtime".to_owned(),
                depth: node.path.len() + 1,
                path: node.path.clone(),
                if_present: optional,
            });
        }
    }
    Ok(out)
}

/// Who depends on each module version (`None`: Spark's module), with that dependency's own
/// exclusions.
type Callers = HashMap<Gav, Vec<(Option<Gav>, Arc<Vec<Exclusion>>)>>;

/// Whether every caller of `node` excludes `group:artifact` (Ivy's `doesCallersExclude`).
fn excludes(
    callers: &Callers,
    global: &[Exclusion],
    node: &Gav,
    group: &str,
    artifact: &str,
    visiting: &mut HashSet<Gav>,
) -> bool {
    let Some(list) = callers.get(node).filter(|l| !l.is_empty()) else {
        return false;
    };
    if !visiting.insert(node.clone()) {
        return true; // a cycle decides nothing
    }
    let all = list.iter().all(|(caller, own)| {
        own.iter().any(|e| e.matches(group, artifact))
            || match caller {
                None => global.iter().any(|e| e.matches(group, artifact)),
                Some(c) => excludes(callers, global, c, group, artifact, visiting),
            }
    });
    visiting.remove(node);
    all
}

/// The nodes reachable from the root without going through an evicted one (evicted nodes
/// themselves are included: they are what a conflict is settled among).
fn reachable(nodes: &HashMap<Gav, Node>, root: &[Edge], evicted: &HashSet<Gav>) -> HashSet<Gav> {
    let mut reach = HashSet::new();
    let mut stack: Vec<&Gav> = root.iter().map(|e| &e.child).collect();
    while let Some(g) = stack.pop() {
        if !reach.insert(g.clone()) || evicted.contains(g) {
            continue;
        }
        if let Some(n) = nodes.get(g) {
            stack.extend(n.edges.iter().map(|e| &e.child));
        }
    }
    reach
}

/// The evicted nodes: for every module with several versions in reach, those that lose to the
/// survivor at the root, recomputed until what is reachable no longer changes.
fn settle(nodes: &HashMap<Gav, Node>, root: &[Edge]) -> HashSet<Gav> {
    let mut evicted: HashSet<Gav> = HashSet::new();
    for _ in 0..32 {
        let reach = reachable(nodes, root, &evicted);
        let mut versions: HashMap<Module, Vec<&Gav>> = HashMap::new();
        for g in &reach {
            versions
                .entry((g.0.clone(), g.1.clone()))
                .or_default()
                .push(g);
        }
        let mut next = HashSet::new();
        for (module, gavs) in versions.iter().filter(|(_, v)| v.len() > 1) {
            let mut memo = HashMap::new();
            let winners = survivors(nodes, root, None, module, &reach, &evicted, &mut memo);
            for g in gavs {
                if !winners.contains(&g.2) {
                    next.insert((*g).clone());
                }
            }
        }
        if next == evicted {
            break;
        }
        evicted = next;
    }
    evicted
}

/// The versions of `module` that survive conflict management at `at` (the root when `None`).
fn survivors(
    nodes: &HashMap<Gav, Node>,
    root: &[Edge],
    at: Option<&Gav>,
    module: &Module,
    reach: &HashSet<Gav>,
    evicted: &HashSet<Gav>,
    memo: &mut HashMap<Gav, Vec<String>>,
) -> Vec<String> {
    if let Some(g) = at {
        if let Some(done) = memo.get(g) {
            return done.clone();
        }
        memo.insert(g.clone(), Vec::new()); // a cycle contributes nothing
    }
    let edges: &[Edge] = match at {
        None => root,
        Some(g) => nodes.get(g).map_or(&[], |n| n.edges.as_slice()),
    };
    let is_module = |g: &Gav| g.0 == module.0 && g.1 == module.1;
    let mut found: Vec<String> = Vec::new();
    let mut forced = None;
    for e in edges.iter().filter(|e| reach.contains(&e.child)) {
        if is_module(&e.child) {
            // Of two versions this module declares, the later wins: Ivy's
            // `ResolveEngine.computeConflicts` puts the node being visited first and
            // `LatestConflictManager` keeps the first forced one.
            if e.forced {
                forced = Some(e.child.2.clone());
            }
            found.push(e.child.2.clone());
        } else if !evicted.contains(&e.child) {
            found.extend(survivors(
                nodes,
                root,
                Some(&e.child),
                module,
                reach,
                evicted,
                memo,
            ));
        }
    }
    let result = match forced {
        Some(v) => vec![v],
        None => found
            .into_iter()
            .max_by(|a, b| ivy_compare(a, b))
            .into_iter()
            .collect(),
    };
    if let Some(g) = at {
        memo.insert(g.clone(), result.clone());
    }
    result
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::model::Flavor;
    use crate::resolve::testing::{Memory, dep, pom, resolve_in};

    #[tokio::test]
    async fn latest_wins_unless_a_pom_declares_it_and_top_level_is_not_forced() {
        let repo = Memory(HashMap::from([
            // app -> near -> x:1.0 ; app -> far -> mid -> x:2.0
            pom(
                "t",
                "app",
                "1",
                &format!("{}{}", dep("near", "1", ""), dep("far", "1", "")),
            ),
            pom("t", "near", "1", &dep("x", "1.0", "")),
            pom("t", "far", "1", &dep("mid", "1", "")),
            pom("t", "mid", "1", &dep("x", "2.0", "")),
            pom("t", "x", "1.0", ""),
            pom("t", "x", "2.0", &dep("only-in-two", "1", "")),
            pom("t", "only-in-two", "1", ""),
            // own declaration beats a deeper newer version
            pom(
                "t",
                "own",
                "1",
                &format!("{}{}", dep("x", "1.0", ""), dep("mid", "1", "")),
            ),
        ]));
        // Ivy: latest wins at the root, and x:2.0's dependency comes with it.
        assert_eq!(
            resolve_in(&repo, &["t:app:1"], Flavor::Ivy).await,
            [
                "t:app:1",
                "t:far:1",
                "t:mid:1",
                "t:near:1",
                "t:only-in-two:1",
                "t:x:2.0"
            ]
        );
        // Maven: nearest wins.
        assert_eq!(
            resolve_in(&repo, &["t:app:1"], Flavor::Maven).await,
            ["t:app:1", "t:far:1", "t:mid:1", "t:near:1", "t:x:1.0"]
        );
        // A POM's own (forced) declaration beats the newer one in its subtree, in both.
        for flavor in [Flavor::Ivy, Flavor::Maven] {
            assert_eq!(
                resolve_in(&repo, &["t:own:1"], flavor).await,
                ["t:mid:1", "t:own:1", "t:x:1.0"]
            );
        }
        // The user's pinned version is not forced in Ivy: the newer one found deeper wins.
        assert_eq!(
            resolve_in(&repo, &["t:x:1.0", "t:far:1"], Flavor::Ivy).await,
            ["t:far:1", "t:mid:1", "t:only-in-two:1", "t:x:2.0"]
        );
        assert_eq!(
            resolve_in(&repo, &["t:x:1.0", "t:far:1"], Flavor::Maven).await,
            ["t:far:1", "t:mid:1", "t:x:1.0"]
        );
    }
}
