//! Effective POMs and the `maven` mode's dependency graph (Maven Resolver's rules: nearest wins,
//! the first declaration breaks ties, dependency management only from the root).
//!
//! The effective model of a POM: its parent chain (each with its active profiles), inheritance,
//! interpolation, `import`-scoped BOMs merged into dependency management (declared entries win,
//! then the first BOM), and its own management applied to its dependencies' missing versions and
//! scopes.
//!
//! Those steps run in that order over the whole inherited model, as Maven's model builder does:
//! a child inherits its parent's dependencies and dependency management as declared, and only
//! then are they interpolated with the child's properties (its `${project.version}` too) and
//! given versions, scopes and exclusions by the child's management, its own entries over its
//! parents'. Ivy 2.5 agrees: `PomModuleDescriptorParser` re-reads each dependency of the parent's
//! descriptor (and each managed one) from its POM element in the child's `PomReader`, and fills a
//! missing version from the dependency management collected for the child. So a version-less
//! dependency of a parent takes the version the child (or a nearer parent) manages, not the one
//! the parent's own management names.
//!
//! The graph for runtime (what Spark needs on its class path): `compile` and `runtime`
//! dependencies; `provided`, `test`, `system` and `import` ones are not followed; a transitive
//! dependency is `runtime` when any edge on its path is; optional dependencies of dependencies are
//! dropped; exclusions accumulate along the path; relocations are followed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::coords::{Coordinate, Exclusion};
use crate::limits::{Limits, MAX_PARENT_DEPTH};
use crate::model::{Context, Flavor, inherit, interpolate_pom, management_key, with_profiles};
use crate::pom::{Dependency, Pom};
use crate::range::Requirement;
use crate::version::MavenVersion;

/// Where POMs and version lists come from.
pub trait PomSource: Sync {
    /// The raw POM of a module version; `None` when the repositories do not have it.
    fn pom(
        &self,
        group: &str,
        artifact: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Pom>, String>> + Send;

    /// The versions the repositories list for a module (`maven-metadata.xml`).
    fn versions(
        &self,
        group: &str,
        artifact: &str,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// One resolved artifact and the path that pulled it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub coordinate: Coordinate,
    pub scope: String,
    pub depth: usize,
    /// The coordinates from the root to this one's parent.
    pub path: Vec<String>,
    /// Taken only when the repository has it (the jar of a `pom`-packaged module, in Ivy).
    pub if_present: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{module}: no POM in the repositories (pulled in by {path})")]
    Missing { module: String, path: String },
    #[error("{module}:{requirement}: no listed version satisfies it (pulled in by {path})")]
    NoVersion {
        module: String,
        requirement: String,
        path: String,
    },
    #[error("{module}: {message} (pulled in by {path})")]
    Source {
        module: String,
        message: String,
        path: String,
    },
    #[error("{artifact}: not in any repository (pulled in by {path})")]
    MissingArtifact { artifact: String, path: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ResolveError>),
    #[error("{0}: the parent chain loops")]
    ParentCycle(String),
    #[error("{module}: {message} (pulled in by {path})")]
    Limit {
        module: String,
        message: String,
        path: String,
    },
    #[error(
        "the resolution did not finish within {0:?} (--resolve-timeout); a repository is \
         slow or sends too little"
    )]
    Deadline(std::time::Duration),
}

type Effective = Result<Pom, ResolveError>;

/// A module's model as resolution reads it and as a child POM inherits it.
#[derive(Debug)]
struct Built {
    /// The effective model.
    effective: Pom,
    /// What a child inherits: the effective model, except that its dependencies and dependency
    /// management are as declared (after profiles and inheritance; before interpolation, BOM
    /// imports and management), since the child interpolates and manages them itself. Of the
    /// dependencies, those the module passes on: Maven's one per module (the normalized list),
    /// Ivy's first declaration of each module revision.
    inheritable: Pom,
}

/// Builds effective POMs (memoized) from a [`PomSource`].
pub struct Models<'s, S: PomSource> {
    source: &'s S,
    context: Context,
    flavor: Flavor,
    cache: Mutex<HashMap<(String, String, String), Arc<Built>>>,
    versions: Mutex<HashMap<(String, String), Vec<String>>>,
    limits: Limits,
    /// POMs read so far.
    modules: AtomicUsize,
    /// [`Pom::text_size`] of the effective models built so far.
    model_bytes: AtomicU64,
}

fn maven_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    MavenVersion::parse(a).cmp(&MavenVersion::parse(b))
}

impl<'s, S: PomSource> Models<'s, S> {
    pub fn new(source: &'s S, context: Context, flavor: Flavor) -> Self {
        Self {
            source,
            context: Context { flavor, ..context },
            flavor,
            cache: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            limits: Limits::default(),
            modules: AtomicUsize::new(0),
            model_bytes: AtomicU64::new(0),
        }
    }

    /// These models, built within `limits` (values, model bytes, modules).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The effective POM of `group:artifact:version`; `path` names who asked, for messages.
    pub async fn effective(
        &self,
        group: &str,
        artifact: &str,
        version: &str,
        path: &str,
    ) -> Effective {
        let built = self.build(group, artifact, version, path, &[]).await?;
        Ok(built.effective.clone())
    }

    /// [`Models::effective`] below `chain`, the modules whose parents or BOMs lead here.
    fn build<'a>(
        &'a self,
        group: &'a str,
        artifact: &'a str,
        version: &'a str,
        path: &'a str,
        chain: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Built>, ResolveError>> + Send + 'a>>
    where
        S: 's,
    {
        Box::pin(async move {
            let key = (group.to_owned(), artifact.to_owned(), version.to_owned());
            if let Some(built) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
                return Ok(built);
            }
            let module = format!("{group}:{artifact}:{version}");
            let limit = |message: String| ResolveError::Limit {
                module: module.clone(),
                message,
                path: path.to_owned(),
            };
            if chain.contains(&module) {
                return Err(ResolveError::ParentCycle(module));
            }
            if chain.len() >= MAX_PARENT_DEPTH {
                return Err(limit(format!(
                    "parents and BOM imports nest more than {MAX_PARENT_DEPTH} deep (from {})",
                    chain.first().map_or("", String::as_str)
                )));
            }
            let read = self.modules.fetch_add(1, Ordering::Relaxed) + 1;
            if read > self.limits.max_modules {
                return Err(limit(format!(
                    "the resolution reads more than {} POMs, the limit \
                     (--maven-max-modules)",
                    self.limits.max_modules
                )));
            }
            let chain = [chain, std::slice::from_ref(&module)].concat();
            let depth = chain.len() - 1;
            let raw = self
                .source
                .pom(group, artifact, version)
                .await
                .map_err(|message| ResolveError::Source {
                    module: module.clone(),
                    message,
                    path: path.to_owned(),
                })?;
            let raw = match raw {
                Some(raw) => raw,
                // A module without a POM: Maven and Ivy both go on with its jar alone (and fail
                // if that is missing too). A missing parent or BOM is an error.
                None if depth == 0 => Pom {
                    group: Some(group.to_owned()),
                    artifact: Some(artifact.to_owned()),
                    version: Some(version.to_owned()),
                    ..Pom::default()
                },
                None => {
                    return Err(ResolveError::Missing {
                        module: module.clone(),
                        path: path.to_owned(),
                    });
                }
            };
            let own = with_profiles(&raw, &self.context);
            // Inheritance first, from what the parent passes on as declared; interpolation and
            // management below then apply to the parent's declarations in this POM's context.
            let inherited = match &raw.parent {
                Some(parent) => {
                    let parent_model = self
                        .build(
                            &parent.group,
                            &parent.artifact,
                            &parent.version,
                            &module,
                            &chain,
                        )
                        .await?;
                    inherit(&own, &parent_model.inheritable, self.flavor)
                }
                None => own,
            };
            let max_value = self.limits.max_value_length;
            let mut pom = interpolate_pom(&inherited, &self.context, max_value)
                .map_err(|e| limit(e.to_string()))?;
            // The declarations this model keeps, by their index in `inherited.dependencies`
            // (interpolation keeps the list as it is).
            let mut kept: Vec<usize> = (0..pom.dependencies.len()).collect();
            if self.flavor == Flavor::Maven {
                // Maven's model normalizer: a dependency declared twice keeps its first place and
                // takes the last declaration.
                kept = normalized(&pom.dependencies);
                pom.dependencies = kept.iter().map(|&i| pom.dependencies[i].clone()).collect();
            }
            let is_import = |d: &Dependency| {
                d.scope.as_deref() == Some("import") && d.kind.as_deref() == Some("pom")
            };
            let mut management = Vec::new();
            match self.flavor {
                Flavor::Maven => {
                    // Import BOMs (this POM's and its parents'): declared entries win, then
                    // earlier BOMs.
                    let mut imports = Vec::new();
                    for d in &pom.dependency_management {
                        if is_import(d) {
                            imports.push(d.clone());
                        } else {
                            management.push(d.clone());
                        }
                    }
                    for bom in imports {
                        let version = bom.version.clone().unwrap_or_default();
                        let bom_pom = self
                            .build(&bom.group, &bom.artifact, &version, &module, &chain)
                            .await?;
                        for d in &bom_pom.effective.dependency_management {
                            if !management
                                .iter()
                                .any(|m| management_key(m) == management_key(d))
                            {
                                management.push(d.clone());
                            }
                        }
                    }
                }
                Flavor::Ivy => {
                    // Ivy records managed versions by group and artifact as it reads them: the
                    // parents' first (see `inherit`), then this POM's, in document order with
                    // each BOM's entries where it is imported; a later entry replaces an earlier
                    // one.
                    let upsert = |management: &mut Vec<Dependency>, d: Dependency| match management
                        .iter_mut()
                        .find(|m| m.group == d.group && m.artifact == d.artifact)
                    {
                        Some(m) => *m = d,
                        None => management.push(d),
                    };
                    for d in std::mem::take(&mut pom.dependency_management) {
                        if is_import(&d) {
                            let version = d.version.clone().unwrap_or_default();
                            let bom_pom = self
                                .build(&d.group, &d.artifact, &version, &module, &chain)
                                .await?;
                            for m in &bom_pom.effective.dependency_management {
                                upsert(&mut management, m.clone());
                            }
                        } else {
                            upsert(&mut management, d);
                        }
                    }
                }
            }
            pom.dependency_management = management;
            // The management (this POM's own over its parents') fills the missing versions,
            // scopes and exclusions of its dependencies, inherited ones included.
            let flavor = self.flavor;
            let same = |m: &Dependency, d: &Dependency| match flavor {
                Flavor::Maven => management_key(m) == management_key(d),
                Flavor::Ivy => m.group == d.group && m.artifact == d.artifact,
            };
            for d in &mut pom.dependencies {
                if let Some(m) = pom.dependency_management.iter().find(|m| same(m, d)) {
                    if d.version.is_none() {
                        d.version = m.version.clone();
                    }
                    if d.scope.is_none() {
                        d.scope = m.scope.clone();
                    }
                    if d.exclusions.is_empty() {
                        d.exclusions = m.exclusions.clone();
                    }
                }
            }
            if self.flavor == Flavor::Ivy {
                // Ivy's descriptor merges a module revision declared again into its first
                // declaration, and that is the one a child re-reads.
                kept = first_of_each_revision(&pom.dependencies);
            }
            let inheritable = Pom {
                dependencies: kept
                    .iter()
                    .map(|&i| inherited.dependencies[i].clone())
                    .collect(),
                dependency_management: inherited.dependency_management,
                ..pom.clone()
            };
            let built = Built {
                effective: pom,
                inheritable,
            };
            let size = (built.effective.text_size() + built.inheritable.text_size()) as u64;
            let held = self.model_bytes.fetch_add(size, Ordering::Relaxed) + size;
            if held > self.limits.max_model_bytes {
                return Err(limit(format!(
                    "the resolution's POMs hold more than {} bytes, the limit \
                     (--maven-max-model-bytes)",
                    self.limits.max_model_bytes
                )));
            }
            let built = Arc::new(built);
            if let Ok(mut cache) = self.cache.lock() {
                cache.insert(key, Arc::clone(&built));
            }
            Ok(built)
        })
    }

    /// A concrete version for a dependency's requirement: the version itself, or the newest
    /// listed version in the range.
    pub async fn pick_version(&self, d: &Dependency, path: &str) -> Result<String, ResolveError> {
        let module = format!("{}:{}", d.group, d.artifact);
        let text = d.version.clone().ok_or_else(|| ResolveError::NoVersion {
            module: module.clone(),
            requirement: "(no version and none managed)".to_owned(),
            path: path.to_owned(),
        })?;
        let requirement = Requirement::parse(&text).map_err(|e| ResolveError::Source {
            module: module.clone(),
            message: e.to_string(),
            path: path.to_owned(),
        })?;
        match &requirement {
            Requirement::Soft(v) => Ok(v.clone()),
            Requirement::Ranges(_) => {
                let listed_key = (d.group.clone(), d.artifact.clone());
                let listed = self
                    .versions
                    .lock()
                    .ok()
                    .and_then(|v| v.get(&listed_key).cloned());
                let versions = match listed {
                    Some(v) => v,
                    None => {
                        let v = self.source.versions(&d.group, &d.artifact).await.map_err(
                            |message| ResolveError::Source {
                                module: module.clone(),
                                message,
                                path: path.to_owned(),
                            },
                        )?;
                        if let Ok(mut cache) = self.versions.lock() {
                            cache.insert(listed_key, v.clone());
                        }
                        v
                    }
                };
                let (cmp, versions): (fn(&str, &str) -> std::cmp::Ordering, _) = match self.flavor {
                    // Maven Resolver collects the listed versions in a java.util.HashMap and
                    // sorts them stably: of equal versions (`1.0`, `1.0.0`) the first in the
                    // map's iteration order wins.
                    Flavor::Maven => (maven_cmp, java_hash_map_order(versions)),
                    Flavor::Ivy => (crate::version::ivy_compare, versions),
                };
                requirement
                    .newest(versions.iter().map(String::as_str), cmp)
                    .map(str::to_owned)
                    .ok_or(ResolveError::NoVersion {
                        module,
                        requirement: text,
                        path: path.to_owned(),
                    })
            }
        }
    }
}

/// Maven's model normalizer on a POM's `dependencies`: the indexes of the declarations that stay,
/// in order. A module (by management key) declared twice keeps the place of its first declaration
/// and takes the last one.
fn normalized(dependencies: &[Dependency]) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for (i, d) in dependencies.iter().enumerate() {
        let key = management_key(d);
        match kept
            .iter_mut()
            .find(|k| management_key(&dependencies[**k]) == key)
        {
            Some(k) => *k = i,
            None => kept.push(i),
        }
    }
    kept
}

/// The indexes of the first declaration of each module revision (group, artifact, version) among
/// a POM's effective `dependencies`: what an Ivy module descriptor passes on to a child POM.
fn first_of_each_revision(dependencies: &[Dependency]) -> Vec<usize> {
    let mut seen = HashSet::new();
    (0..dependencies.len())
        .filter(|&i| {
            let d = &dependencies[i];
            seen.insert((&d.group, &d.artifact, &d.version))
        })
        .collect()
}

/// `keys` in the order a `java.util.HashMap<String, _>` filled with them in this order iterates:
/// by bucket (the spread `String.hashCode` masked by the table size, 16 doubled while more than
/// three quarters full), then by insertion within a bucket.
pub fn java_hash_map_order(keys: Vec<String>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for k in keys {
        if !unique.contains(&k) {
            unique.push(k);
        }
    }
    let mut capacity: u32 = 16;
    while unique.len() as u64 * 4 > u64::from(capacity) * 3 {
        capacity *= 2;
    }
    let bucket = |s: &str| {
        let h = s
            .encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        (h ^ (h >> 16)) & (capacity - 1)
    };
    unique.sort_by_key(|k| bucket(k));
    unique
}

/// Types whose artifact is a `.jar` besides the ones that imply a classifier: Maven's default
/// artifact handlers (any other type, `bundle` among them, is its own extension).
pub const MAVEN_JAR_TYPES: [&str; 2] = ["maven-plugin", "ejb"];

/// The extension and classifier a dependency `type` (and `classifier`) stands for, where
/// `jar_types` are the types that are plain jars for the tool at hand.
pub fn type_artifact(
    kind: &str,
    classifier: Option<&str>,
    jar_types: &[&str],
) -> (String, Option<String>) {
    let (extension, implied) = match kind {
        "test-jar" => ("jar", Some("tests")),
        "ejb-client" => ("jar", Some("client")),
        "java-source" => ("jar", Some("sources")),
        "javadoc" => ("jar", Some("javadoc")),
        k if jar_types.contains(&k) => ("jar", None),
        k => (k, None),
    };
    (
        extension.to_owned(),
        classifier.or(implied).map(str::to_owned),
    )
}

fn transitive_scope(parent: &str, child: &str) -> Option<&'static str> {
    match (parent, child) {
        (_, "provided" | "test" | "system" | "import") => None,
        ("compile", "compile") => Some("compile"),
        (_, "runtime") | ("runtime", _) => Some("runtime"),
        _ => Some("compile"),
    }
}

/// Resolves `roots` with Maven's rules: breadth first, the nearest declaration of a module wins,
/// the first one at equal depth breaks ties, unless a version range elsewhere in the graph
/// excludes it (then the nearest version that satisfies every range wins, as Maven's
/// `NearestVersionSelector` does); `exclusions` apply everywhere.
pub async fn resolve_maven<S: PomSource>(
    models: &Models<'_, S>,
    roots: &[Coordinate],
    exclusions: &[Exclusion],
) -> Result<Vec<Resolved>, ResolveError> {
    // The request is a POM's dependency list: a module named twice keeps its first place and
    // takes the last declaration.
    let mut unique: Vec<&Coordinate> = Vec::new();
    for c in roots {
        let same = |u: &&Coordinate| {
            u.group == c.group
                && u.artifact == c.artifact
                && u.extension == c.extension
                && u.classifier == c.classifier
        };
        match unique.iter_mut().find(|u| same(u)) {
            Some(u) => *u = c,
            None => unique.push(c),
        }
    }
    let roots: Vec<Coordinate> = unique.into_iter().cloned().collect();
    let mut pins: HashMap<(String, String), String> = HashMap::new();
    for _ in 0..8 {
        let pass = maven_pass(models, &roots, exclusions, &pins).await?;
        let mut changed = false;
        for r in &pass.resolved {
            let module = (r.coordinate.group.clone(), r.coordinate.artifact.clone());
            let Some(ranges) = pass.ranges.get(&module) else {
                continue;
            };
            let fits = |v: &str| ranges.iter().all(|q| q.accepts(v, maven_cmp));
            if fits(&r.coordinate.version) {
                continue;
            }
            let candidates = pass.candidates.get(&module).into_iter().flatten();
            if let Some(v) = candidates.into_iter().find(|v| fits(v))
                && pins.get(&module) != Some(v)
            {
                pins.insert(module, v.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(pass.resolved);
        }
    }
    Ok(maven_pass(models, &roots, exclusions, &pins)
        .await?
        .resolved)
}

struct MavenPass {
    resolved: Vec<Resolved>,
    /// Per module, the ranges the graph's declarations ask for.
    ranges: HashMap<(String, String), Vec<Requirement>>,
    /// Per module, the versions the declarations name (a range's newest), nearest first.
    candidates: HashMap<(String, String), Vec<String>>,
}

async fn maven_pass<S: PomSource>(
    models: &Models<'_, S>,
    roots: &[Coordinate],
    exclusions: &[Exclusion],
    pins: &HashMap<(String, String), String>,
) -> Result<MavenPass, ResolveError> {
    struct Node {
        dependency: Dependency,
        scope: String,
        depth: usize,
        path: Vec<String>,
        exclusions: Vec<Exclusion>,
    }
    let mut queue: VecDeque<Node> = roots
        .iter()
        .map(|c| Node {
            dependency: Dependency {
                group: c.group.clone(),
                artifact: c.artifact.clone(),
                version: Some(c.version.clone()),
                kind: Some(c.extension.clone()),
                classifier: c.classifier.clone(),
                ..Dependency::default()
            },
            scope: "compile".to_owned(),
            depth: 1,
            path: Vec::new(),
            exclusions: exclusions.to_vec(),
        })
        .collect();
    let mut chosen: HashSet<(String, String, String, String)> = HashSet::new();
    let mut pass = MavenPass {
        resolved: Vec::new(),
        ranges: HashMap::new(),
        candidates: HashMap::new(),
    };
    let mut prefetched_depth = 0;
    while let Some(node) = queue.pop_front() {
        if node.depth > prefetched_depth {
            // A new level: fetch the POMs it names concurrently (errors surface below).
            prefetched_depth = node.depth;
            let wanted: HashSet<(String, String, String)> = std::iter::once(&node)
                .chain(queue.iter())
                .filter_map(|n| {
                    let d = &n.dependency;
                    let v = d.version.as_deref()?;
                    matches!(Requirement::parse(v), Ok(Requirement::Soft(_)))
                        .then(|| (d.group.clone(), d.artifact.clone(), v.to_owned()))
                })
                .collect();
            futures::future::join_all(wanted.iter().map(|(g, a, v)| models.effective(g, a, v, "")))
                .await;
        }
        let d = &node.dependency;
        let key = management_key(d);
        let module = (d.group.clone(), d.artifact.clone());
        let path_text = if node.path.is_empty() {
            "the request".to_owned()
        } else {
            node.path.join(" -> ")
        };
        let declared = models.pick_version(d, &path_text).await;
        if let Some(Ok(requirement @ Requirement::Ranges(_))) =
            d.version.as_deref().map(Requirement::parse)
        {
            pass.ranges
                .entry(module.clone())
                .or_default()
                .push(requirement);
        }
        if let Ok(v) = &declared {
            let candidates = pass.candidates.entry(module.clone()).or_default();
            if !candidates.contains(v) {
                candidates.push(v.clone());
            }
        }
        if chosen.contains(&key) {
            continue; // a nearer or earlier declaration won
        }
        let declared = declared?;
        let mut version = pins.get(&module).cloned().unwrap_or(declared);
        let mut group = d.group.clone();
        let mut artifact = d.artifact.clone();
        let mut pom = models
            .effective(&group, &artifact, &version, &path_text)
            .await?;
        // Relocations (bounded, a relocation may point at another).
        for _ in 0..8 {
            let Some(r) = pom.relocation.clone() else {
                break;
            };
            group = r.group.unwrap_or(group);
            artifact = r.artifact.unwrap_or(artifact);
            version = r.version.unwrap_or(version);
            pom = models
                .effective(&group, &artifact, &version, &path_text)
                .await?;
        }
        chosen.insert(key);
        let (extension, classifier) = type_artifact(
            d.kind.as_deref().unwrap_or("jar"),
            d.classifier.as_deref(),
            &MAVEN_JAR_TYPES,
        );
        let coordinate = Coordinate {
            group: group.clone(),
            artifact: artifact.clone(),
            version: version.clone(),
            extension,
            classifier,
        };
        let here = format!("{group}:{artifact}:{version}");
        let mut child_path = node.path.clone();
        child_path.push(here);
        for child in &pom.dependencies {
            let child_scope = child.scope.as_deref().unwrap_or("compile");
            let Some(scope) = transitive_scope(&node.scope, child_scope) else {
                continue;
            };
            if child.optional.as_deref() == Some("true") {
                continue;
            }
            if node
                .exclusions
                .iter()
                .any(|e| e.matches(&child.group, &child.artifact))
            {
                continue;
            }
            let mut excl = node.exclusions.clone();
            excl.extend(child.exclusions.iter().cloned());
            queue.push_back(Node {
                dependency: child.clone(),
                scope: scope.to_owned(),
                depth: node.depth + 1,
                path: child_path.clone(),
                exclusions: excl,
            });
        }
        pass.resolved.push(Resolved {
            coordinate,
            scope: node.scope.clone(),
            depth: node.depth,
            path: node.path,
            if_present: false,
        });
    }
    Ok(pass)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// POMs in memory: "g:a:v" -> XML.
    pub struct Memory(pub HashMap<String, String>);

    impl PomSource for Memory {
        async fn pom(&self, g: &str, a: &str, v: &str) -> Result<Option<Pom>, String> {
            match self.0.get(&format!("{g}:{a}:{v}")) {
                Some(xml) => Pom::parse(xml).map(Some).map_err(|e| e.to_string()),
                None => Ok(None),
            }
        }

        async fn versions(&self, g: &str, a: &str) -> Result<Vec<String>, String> {
            let prefix = format!("{g}:{a}:");
            Ok(self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
                .collect())
        }
    }

    pub fn pom(g: &str, a: &str, v: &str, deps: &str) -> (String, String) {
        (
            format!("{g}:{a}:{v}"),
            format!(
                "<project><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>\
                 <dependencies>{deps}</dependencies></project>"
            ),
        )
    }

    pub fn dep(a: &str, v: &str, extra: &str) -> String {
        format!(
            "<dependency><groupId>t</groupId><artifactId>{a}</artifactId><version>{v}</version>{extra}</dependency>"
        )
    }

    /// The sorted coordinates `roots` resolve to in `flavor`'s mode.
    pub async fn resolve_in(repo: &Memory, roots: &[&str], flavor: Flavor) -> Vec<String> {
        let models = Models::new(repo, Context::default(), flavor);
        let roots: Vec<Coordinate> = roots
            .iter()
            .map(|r| r.parse().expect("coordinate"))
            .collect();
        let resolved = match flavor {
            Flavor::Maven => resolve_maven(&models, &roots, &[]).await,
            Flavor::Ivy => crate::spark::resolve_spark(&models, &roots, &[]).await,
        };
        let mut out: Vec<String> = resolved
            .expect("resolves")
            .into_iter()
            .map(|r| r.coordinate.to_string())
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn java_hash_map_iteration_order() {
        // Buckets 3 and 13; `1.1` and `1.1-final` share bucket 4 and keep insertion order.
        let order = |v: &[&str]| java_hash_map_order(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(order(&["1.0.0", "1.0"]), ["1.0", "1.0.0"]);
        assert_eq!(order(&["1.1-final", "1.1"]), ["1.1-final", "1.1"]);
        assert_eq!(order(&["1.1", "1.1-final"]), ["1.1", "1.1-final"]);
    }

    #[tokio::test]
    async fn a_parents_dependencies_are_managed_and_interpolated_in_the_child() {
        let dependency = |a: &str, v: &str| {
            format!(
                "<dependency><groupId>t</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
            )
        };
        let versionless = "<dependency><groupId>t</groupId><artifactId>m</artifactId></dependency>";
        let parent = format!(
            "<project><groupId>t</groupId><artifactId>parent</artifactId><version>1</version>\
             <properties><p.v>1</p.v></properties>\
             <dependencyManagement><dependencies>{}</dependencies></dependencyManagement>\
             <dependencies>{versionless}{}</dependencies></project>",
            dependency("m", "1"),
            dependency("p", "${p.v}"),
        );
        let child = format!(
            "<project><parent><groupId>t</groupId><artifactId>parent</artifactId><version>1</version></parent>\
             <artifactId>child</artifactId><version>1</version><properties><p.v>2</p.v></properties>\
             <dependencyManagement><dependencies>{}</dependencies></dependencyManagement></project>",
            dependency("m", "2"),
        );
        let repo = Memory(HashMap::from([
            ("t:parent:1".to_owned(), parent),
            ("t:child:1".to_owned(), child),
            pom("t", "m", "1", ""),
            pom("t", "m", "2", ""),
            pom("t", "p", "1", ""),
            pom("t", "p", "2", ""),
        ]));
        for flavor in [Flavor::Maven, Flavor::Ivy] {
            assert_eq!(
                resolve_in(&repo, &["t:child:1"], flavor).await,
                ["t:child:1", "t:m:2", "t:p:2"],
                "{flavor:?}"
            );
        }
    }

    #[tokio::test]
    async fn nearest_wins_and_scopes_optionals_exclusions_apply() {
        let repo = Memory(HashMap::from([
            pom(
                "t",
                "app",
                "1",
                &format!(
                    "{}{}{}{}{}",
                    dep("lib", "1", ""),
                    dep("deep", "1", ""),
                    dep("testonly", "1", "<scope>test</scope>"),
                    dep("opt", "1", "<optional>true</optional>"),
                    dep(
                        "noisy",
                        "1",
                        "<exclusions><exclusion><groupId>t</groupId><artifactId>junk</artifactId></exclusion></exclusions>"
                    ),
                ),
            ),
            pom("t", "lib", "1", &dep("shared", "1", "")),
            pom("t", "deep", "1", &dep("mid", "1", "")),
            pom("t", "mid", "1", &dep("shared", "2", "")),
            pom("t", "shared", "1", ""),
            pom("t", "shared", "2", ""),
            pom("t", "testonly", "1", ""),
            pom("t", "opt", "1", ""),
            pom(
                "t",
                "noisy",
                "1",
                &format!("{}{}", dep("junk", "1", ""), dep("fine", "[1,2)", "")),
            ),
            pom("t", "junk", "1", ""),
            pom("t", "fine", "1.0", ""),
            pom("t", "fine", "1.5", ""),
            pom("t", "fine", "2.0", ""),
        ]));
        assert_eq!(
            resolve_in(&repo, &["t:app:1"], Flavor::Maven).await,
            [
                "t:app:1",
                "t:deep:1",
                "t:fine:1.5",
                "t:lib:1",
                "t:mid:1",
                "t:noisy:1",
                "t:shared:1"
            ]
        );
    }
}
