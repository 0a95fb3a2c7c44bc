//! From raw POMs to the model resolution uses, one step at a time, as Maven's model builder
//! does: profile activation, inheritance from the parent chain, property interpolation. Importing
//! BOMs and applying dependency management need POMs from a repository and come with the
//! resolver.

use std::collections::BTreeMap;

use crate::pom::{Activation, Dependency, Pom};
use crate::range::Requirement;
use crate::version::MavenVersion;

/// What profile activation sees of the machine the resolution stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `java.version`, such as `17.0.15`.
    pub jdk: String,
    /// `os.name`, `os.arch`, `os.version` as Java reports them (`Linux`, `amd64`, ...).
    pub os_name: String,
    pub os_arch: String,
    pub os_version: String,
    /// User properties (`-D`), which profiles test and interpolation reads.
    pub properties: BTreeMap<String, String>,
    /// Whose rules apply where Maven and Ivy differ.
    pub flavor: Flavor,
}

impl Default for Context {
    /// Spark's pods: Linux on amd64 with Java 17.
    fn default() -> Self {
        Self {
            jdk: "17".to_owned(),
            os_name: "Linux".to_owned(),
            os_arch: "amd64".to_owned(),
            os_version: String::new(),
            properties: BTreeMap::new(),
            flavor: Flavor::Maven,
        }
    }
}

impl Context {
    /// The Java system properties a POM can read (`java.version`, `os.name`, ...).
    pub fn system_property(&self, name: &str) -> Option<String> {
        let spec = self.jdk.split('.').next().unwrap_or(&self.jdk);
        let spec = if spec == "1" {
            self.jdk.split('.').take(2).collect::<Vec<_>>().join(".")
        } else {
            spec.to_owned()
        };
        Some(match name {
            "java.version" => self.jdk.clone(),
            "java.specification.version" => spec,
            "os.name" => self.os_name.clone(),
            "os.arch" => self.os_arch.clone(),
            "os.version" => self.os_version.clone(),
            "file.separator" => "/".to_owned(),
            "path.separator" => ":".to_owned(),
            _ => return None,
        })
    }

    /// A property as profile activation sees it: user properties, then system ones.
    pub fn property(&self, name: &str) -> Option<String> {
        self.properties
            .get(name)
            .cloned()
            .or_else(|| self.system_property(name))
    }

    /// Maven's OS families (`plexus-utils` `Os`): the ones a POM can test.
    fn is_family(&self, family: &str) -> bool {
        let name = self.os_name.to_ascii_lowercase();
        match family.to_ascii_lowercase().as_str() {
            "windows" => name.contains("windows"),
            "win9x" => {
                name.contains("windows")
                    && (name.contains("95") || name.contains("98") || name.contains("me"))
            }
            "winnt" => name.contains("windows") && !name.contains("95") && !name.contains("98"),
            "mac" => name.contains("mac"),
            "unix" => {
                !name.contains("windows")
                    && !name.contains("os/2")
                    && !name.contains("netware")
                    && !name.contains("openvms")
                    && !name.contains("z/os")
            }
            "dos" => name.contains("windows") || name.contains("os/2"),
            "os/2" => name.contains("os/2"),
            "netware" => name.contains("netware"),
            "z/os" => name.contains("z/os") || name.contains("os/390"),
            "os/400" => name.contains("os/400"),
            "openvms" => name.contains("openvms"),
            "tandem" => name.contains("nonstop_kernel"),
            _ => false,
        }
    }
}

/// `value` tested against `expected`, where `!expected` negates (Maven's rule for OS fields and
/// property values).
fn matches_negatable(expected: &str, test: impl Fn(&str) -> bool) -> bool {
    match expected.strip_prefix('!') {
        Some(rest) => !test(rest),
        None => test(expected),
    }
}

/// Whether an activation's conditions (other than `activeByDefault`) hold; `None` when it has
/// none. All present conditions must hold (Maven 3.2.2 and later).
pub fn conditions_hold(activation: &Activation, context: &Context) -> Option<bool> {
    let mut any = false;
    let mut all = true;
    if let Some(jdk) = &activation.jdk {
        any = true;
        all &= jdk_matches(jdk, &context.jdk);
    }
    if let Some((name, value)) = &activation.property {
        any = true;
        all &= match name.strip_prefix('!') {
            Some(name) => context.property(name).is_none(),
            None => match (context.property(name), value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(actual), Some(expected)) => matches_negatable(expected, |e| e == actual),
            },
        };
    }
    if let Some(os) = &activation.os {
        any = true;
        if let Some(family) = &os.family {
            all &= matches_negatable(family, |f| context.is_family(f));
        }
        if let Some(name) = &os.name {
            all &= matches_negatable(name, |n| n.eq_ignore_ascii_case(&context.os_name));
        }
        if let Some(arch) = &os.arch {
            all &= matches_negatable(arch, |a| a.eq_ignore_ascii_case(&context.os_arch));
        }
        if let Some(version) = &os.version {
            all &= matches_negatable(version, |v| v.eq_ignore_ascii_case(&context.os_version));
        }
    }
    if activation.file_exists.is_some() || activation.file_missing.is_some() {
        // A file of the machine that built the artifact: never true for a resolution.
        any = true;
        all = false;
    }
    any.then_some(all)
}

/// Maven's JDK activation: a version prefix (`11`, `1.8`), negated with `!`, or a range.
fn jdk_matches(spec: &str, jdk: &str) -> bool {
    let spec = spec.trim();
    if spec.starts_with(['[', '(']) {
        return Requirement::parse(spec).is_ok_and(|r| {
            r.accepts(jdk, |a, b| {
                MavenVersion::parse(a).cmp(&MavenVersion::parse(b))
            })
        });
    }
    matches_negatable(spec, |prefix| {
        jdk == prefix
            || jdk.starts_with(&format!("{prefix}."))
            || jdk.starts_with(prefix) && prefix.ends_with('.')
    })
}

/// Which tool's rules a model follows where Maven and Apache Ivy (Spark's `--packages`) differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Maven's model builder.
    #[default]
    Maven,
    /// Ivy 2.5's `PomReader`, as `spark-submit --packages` reads POMs.
    Ivy,
}

/// The indexes of the profiles of `pom` that are active: those whose conditions hold, or, when
/// none does, those active by default (Maven); any profile that is active by default or has one
/// condition that holds (Ivy).
pub fn active_profiles(pom: &Pom, context: &Context) -> Vec<usize> {
    if context.flavor == Flavor::Ivy {
        return pom
            .profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| ivy_profile_active(&p.activation, &pom.properties, context))
            .map(|(i, _)| i)
            .collect();
    }
    let active: Vec<usize> = pom
        .profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| conditions_hold(&p.activation, context) == Some(true))
        .map(|(i, _)| i)
        .collect();
    if !active.is_empty() {
        return active;
    }
    pom.profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| p.activation.active_by_default)
        .map(|(i, _)| i)
        .collect()
}

/// Ivy 2.5's `PomProfileElement.isActive`: active by default, or by property (tested against the
/// POM's own properties, not system ones), or by OS (`name`, `arch`, `version` equal to Java's,
/// `family` a case-sensitive substring of `os.name`, no `!`), or by JDK (`!` negates). Each is
/// enough on its own, and `activeByDefault` is never switched off by another profile.
fn ivy_profile_active(
    activation: &Activation,
    properties: &std::collections::BTreeMap<String, String>,
    context: &Context,
) -> bool {
    if activation.active_by_default {
        return true;
    }
    if let Some((name, value)) = &activation.property {
        let (negated, name) = match name.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, name.as_str()),
        };
        // Ivy's variables: the POM's properties and the JVM's system properties.
        let lookup = properties
            .get(name)
            .cloned()
            .or_else(|| context.property(name));
        let holds = match value.as_deref().filter(|v| !v.is_empty()) {
            None => lookup.is_some() != negated,
            Some(expected) => match expected.strip_prefix('!') {
                Some(rest) => lookup.is_some_and(|v| v != rest),
                None => lookup.is_some_and(|v| v == expected),
            },
        };
        if !name.is_empty() && holds {
            return true;
        }
    }
    if let Some(os) = &activation.os {
        let equal =
            |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.trim() == have);
        let any =
            os.name.is_some() || os.family.is_some() || os.arch.is_some() || os.version.is_some();
        if any
            && equal(&os.name, &context.os_name)
            && os
                .family
                .as_deref()
                .is_none_or(|f| context.os_name.contains(f.trim()))
            && equal(&os.arch, &context.os_arch)
            && equal(&os.version, &context.os_version)
        {
            return true;
        }
    }
    if let Some(jdk) = &activation.jdk {
        let jdk = jdk.trim();
        let holds = match jdk.strip_prefix('!') {
            Some(rest) => !jdk_matches(rest.trim(), &context.jdk),
            None => jdk_matches(jdk, &context.jdk),
        };
        if holds {
            return true;
        }
    }
    false
}

/// The key dependency management and merging use: group, artifact, type, classifier.
pub fn management_key(d: &Dependency) -> (String, String, String, String) {
    (
        d.group.clone(),
        d.artifact.clone(),
        d.kind.clone().unwrap_or_else(|| "jar".to_owned()),
        d.classifier.clone().unwrap_or_default(),
    )
}

/// Adds `extra` to `base`, replacing entries with the same management key.
fn merge_dependencies(base: &mut Vec<Dependency>, extra: &[Dependency]) {
    for d in extra {
        let key = management_key(d);
        match base.iter_mut().find(|b| management_key(b) == key) {
            Some(existing) => *existing = d.clone(),
            None => base.push(d.clone()),
        }
    }
}

/// `pom` with its active profiles merged in (profile properties and dependencies win).
pub fn with_profiles(pom: &Pom, context: &Context) -> Pom {
    let mut out = pom.clone();
    for i in active_profiles(pom, context) {
        let profile = &pom.profiles[i];
        for (name, value) in &profile.properties {
            // Ivy adds a profile's properties only where the POM does not define them.
            if context.flavor == Flavor::Maven || !pom.properties.contains_key(name) {
                out.properties.insert(name.clone(), value.clone());
            }
        }
        match context.flavor {
            Flavor::Maven => merge_dependencies(&mut out.dependencies, &profile.dependencies),
            // Ivy adds a profile's dependencies after the POM's own, replacing none (see
            // `inherit`).
            Flavor::Ivy => out
                .dependencies
                .extend(profile.dependencies.iter().cloned()),
        }
        merge_dependencies(
            &mut out.dependency_management,
            &profile.dependency_management,
        );
    }
    out.profiles.clear();
    out
}

/// `child` inheriting from `parent` (its model as a child inherits it: see the resolver's
/// `Built::inheritable`): group and version when absent, properties, dependency management and
/// dependencies, the child's own winning (Maven); Ivy keeps the parent's dependencies and managed
/// entries beside the child's. Interpolation and dependency management come after, on the result.
pub fn inherit(child: &Pom, parent: &Pom, flavor: Flavor) -> Pom {
    let mut out = child.clone();
    if out.group.is_none() {
        out.group = parent
            .group
            .clone()
            .or_else(|| child.parent.as_ref().map(|p| p.group.clone()));
    }
    if out.version.is_none() {
        out.version = parent
            .version
            .clone()
            .or_else(|| child.parent.as_ref().map(|p| p.version.clone()));
    }
    let mut properties = parent.properties.clone();
    properties.extend(child.properties.clone());
    out.properties = properties;
    match flavor {
        Flavor::Maven => {
            let mut management = parent.dependency_management.clone();
            merge_dependencies(&mut management, &child.dependency_management);
            out.dependency_management = management;
            let mut dependencies = parent.dependencies.clone();
            merge_dependencies(&mut dependencies, &child.dependencies);
            out.dependencies = dependencies;
        }
        // Ivy 2.5's PomModuleDescriptorParser records the parent's managed entries, then the
        // child's (a later one replaces an earlier one of the same module when they are applied).
        // It adds the child's own dependencies, its profiles', then each of the parent's
        // descriptor's dependencies, and none replaces another: in
        // PomModuleDescriptorBuilder.addDependency a module revision already declared gets the
        // configurations of the new declaration's scope added to its first descriptor. So a
        // module the child declares `provided` (or `test`, or optional) and the parent plainly is
        // a runtime dependency, and one the parent declares in another version is a second
        // dependency. The parent's descriptor keeps its first declaration of each module
        // revision (its scope and flags), and that is what `parent` passes on.
        Flavor::Ivy => {
            out.dependency_management = [
                parent.dependency_management.as_slice(),
                &child.dependency_management,
            ]
            .concat();
            out.dependencies = [child.dependencies.as_slice(), &parent.dependencies].concat();
        }
    }
    out
}

/// A value that grew past its limit while `${...}` expressions were expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a value grows past {limit} bytes when its ${{...}} properties are expanded (it starts {start:?}); \
     the limit is --maven-max-value-length"
)]
pub struct TooLong {
    pub limit: usize,
    pub start: String,
}

/// Replaces `${name}` in `text`: `project.*`/`pom.*` (groupId, artifactId, version, packaging,
/// parent.*), then `context` (user and system properties), then the model's properties;
/// unresolved expressions stay as written, as Maven leaves them. Nested values are expanded up to
/// a fixed depth, so a cycle ends; a value that grows past `max_len` bytes is an error (a
/// property that names another ten times per level grows tenfold with each).
pub fn interpolate(
    text: &str,
    pom: &Pom,
    context: &Context,
    max_len: usize,
) -> Result<String, TooLong> {
    let lookup = |name: &str| -> Option<String> {
        let name = name
            .strip_prefix("pom.")
            .map_or_else(|| name.to_owned(), |rest| format!("project.{rest}"));
        match name.as_str() {
            "project.groupId" | "groupId" => pom.group.clone(),
            "project.artifactId" | "artifactId" => pom.artifact.clone(),
            "project.version" | "version" => pom.version.clone(),
            "project.packaging" => Some(pom.packaging.clone().unwrap_or_else(|| "jar".to_owned())),
            "project.parent.groupId" | "parent.groupId" => {
                pom.parent.as_ref().map(|p| p.group.clone())
            }
            "project.parent.artifactId" | "parent.artifactId" => {
                pom.parent.as_ref().map(|p| p.artifact.clone())
            }
            "project.parent.version" | "parent.version" => {
                pom.parent.as_ref().map(|p| p.version.clone())
            }
            // Maven: user properties, the model's, then system properties; Ivy substitutes its
            // own variables (the system properties among them) before the POM's properties.
            other => match context.flavor {
                Flavor::Maven => context
                    .properties
                    .get(other)
                    .or_else(|| pom.properties.get(other))
                    .cloned()
                    .or_else(|| context.system_property(other)),
                Flavor::Ivy => context
                    .system_property(other)
                    .or_else(|| context.properties.get(other).cloned())
                    .or_else(|| pom.properties.get(other).cloned()),
            },
        }
    };
    let too_long = || TooLong {
        limit: max_len,
        start: sparkstage_api::shown::outside(text, 60),
    };
    let mut current = text.to_owned();
    for _ in 0..16 {
        let mut out = String::with_capacity(current.len().min(max_len));
        let mut rest = current.as_str();
        let mut changed = false;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match lookup(name) {
                        Some(value) => {
                            if out.len() + value.len() > max_len {
                                return Err(too_long());
                            }
                            out.push_str(&value);
                            changed = true;
                        }
                        None => {
                            out.push_str("${");
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        if out.len() > max_len {
            return Err(too_long());
        }
        if !changed || out == current {
            return Ok(out);
        }
        current = out;
    }
    Ok(current)
}

/// Interpolates every value resolution reads: coordinates, versions, scopes, optional flags,
/// types, classifiers and exclusions of dependencies and managed dependencies; each value at
/// most `max_len` bytes once expanded.
pub fn interpolate_pom(pom: &Pom, context: &Context, max_len: usize) -> Result<Pom, TooLong> {
    let mut out = pom.clone();
    let i = |s: &str| interpolate(s, pom, context, max_len);
    let o = |s: &Option<String>| s.as_deref().map(i).transpose();
    out.group = o(&pom.group)?;
    out.version = o(&pom.version)?;
    out.packaging = o(&pom.packaging)?;
    for list in [&mut out.dependencies, &mut out.dependency_management] {
        for d in list.iter_mut() {
            d.group = i(&d.group)?;
            d.artifact = i(&d.artifact)?;
            d.version = o(&d.version)?;
            d.kind = o(&d.kind)?;
            d.classifier = o(&d.classifier)?;
            d.scope = o(&d.scope)?;
            d.optional = o(&d.optional)?;
            for e in &mut d.exclusions {
                e.group = i(&e.group)?;
                e.artifact = i(&e.artifact)?;
            }
        }
    }
    Ok(out)
}

impl Pom {
    /// About how many bytes this model holds: the text of its values (for
    /// [`crate::limits::Limits::max_model_bytes`]).
    pub fn text_size(&self) -> usize {
        let s = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        let deps = |list: &[Dependency]| -> usize {
            list.iter()
                .map(|d| {
                    d.group.len()
                        + d.artifact.len()
                        + s(&d.version)
                        + s(&d.kind)
                        + s(&d.classifier)
                        + s(&d.scope)
                        + s(&d.optional)
                        + d.exclusions
                            .iter()
                            .map(|e| e.group.len() + e.artifact.len())
                            .sum::<usize>()
                        + 64
                })
                .sum()
        };
        s(&self.group)
            + s(&self.artifact)
            + s(&self.version)
            + s(&self.packaging)
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 32)
                .sum::<usize>()
            + deps(&self.dependencies)
            + deps(&self.dependency_management)
            + self
                .profiles
                .iter()
                .map(|p| {
                    p.properties
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 32)
                        .sum::<usize>()
                        + deps(&p.dependencies)
                        + deps(&p.dependency_management)
                })
                .sum::<usize>()
            + self
                .repositories
                .iter()
                .map(|(a, b)| a.len() + b.len())
                .sum::<usize>()
            + 256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pom::{Os, Profile};

    fn profile(activation: Activation) -> Profile {
        Profile {
            activation,
            ..Profile::default()
        }
    }

    #[test]
    fn activation_rules() {
        let linux = Context::default();
        let os = |family: &str| Activation {
            os: Some(Os {
                family: Some(family.into()),
                ..Os::default()
            }),
            ..Activation::default()
        };
        assert_eq!(conditions_hold(&os("!windows"), &linux), Some(true));
        assert_eq!(conditions_hold(&os("unix"), &linux), Some(true));
        assert_eq!(conditions_hold(&os("mac"), &linux), Some(false));
        let jdk = |spec: &str| Activation {
            jdk: Some(spec.into()),
            ..Activation::default()
        };
        assert_eq!(conditions_hold(&jdk("17"), &linux), Some(true));
        assert_eq!(conditions_hold(&jdk("1.8"), &linux), Some(false));
        assert_eq!(conditions_hold(&jdk("!1.8"), &linux), Some(true));
        assert_eq!(conditions_hold(&jdk("[11,)"), &linux), Some(true));
        assert_eq!(conditions_hold(&jdk("[1.8,11)"), &linux), Some(false));
        assert_eq!(conditions_hold(&Activation::default(), &linux), None);

        // activeByDefault only when no other profile of the POM is active.
        let mut pom = Pom {
            profiles: vec![
                profile(Activation {
                    active_by_default: true,
                    ..Activation::default()
                }),
                profile(jdk("1.8")),
            ],
            ..Pom::default()
        };
        assert_eq!(active_profiles(&pom, &linux), [0]);
        pom.profiles[1] = profile(jdk("17"));
        assert_eq!(active_profiles(&pom, &linux), [1]);
        // Ivy keeps the default one on, and tests OS families as substrings of os.name.
        pom.profiles[0].activation.active_by_default = true;
        let ivy = Context {
            flavor: Flavor::Ivy,
            ..linux.clone()
        };
        assert_eq!(active_profiles(&pom, &ivy), [0, 1]);
        let families = Pom {
            profiles: vec![
                profile(os("unix")),
                profile(os("Lin")),
                profile(os("!windows")),
            ],
            ..Pom::default()
        };
        assert_eq!(active_profiles(&families, &ivy), [1]);
        assert_eq!(active_profiles(&families, &linux), [0, 2]);
        let mut with_prop = linux.clone();
        with_prop.properties.insert("flavor".into(), "fast".into());
        let prop = |name: &str, value: Option<&str>| Activation {
            property: Some((name.into(), value.map(str::to_owned))),
            ..Activation::default()
        };
        assert_eq!(
            conditions_hold(&prop("flavor", None), &with_prop),
            Some(true)
        );
        assert_eq!(
            conditions_hold(&prop("flavor", Some("!fast")), &with_prop),
            Some(false)
        );
        assert_eq!(conditions_hold(&prop("!flavor", None), &linux), Some(true));
    }

    #[test]
    fn inheritance_and_interpolation() {
        let parent = Pom::parse(
            r#"<project><groupId>org.example</groupId><artifactId>parent</artifactId>
               <version>2.1</version>
               <properties><lib.version>1.0</lib.version><base>${project.version}</base></properties>
               <dependencyManagement><dependencies>
                 <dependency><groupId>g</groupId><artifactId>lib</artifactId><version>${lib.version}</version></dependency>
               </dependencies></dependencyManagement></project>"#,
        )
        .expect("parent");
        let child = Pom::parse(
            r#"<project><parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>2.1</version></parent>
               <artifactId>child</artifactId>
               <properties><lib.version>1.5</lib.version></properties>
               <dependencies>
                 <dependency><groupId>${project.groupId}</groupId><artifactId>sibling</artifactId><version>${project.parent.version}</version></dependency>
                 <dependency><groupId>x</groupId><artifactId>y</artifactId><version>${undefined}</version></dependency>
               </dependencies></project>"#,
        )
        .expect("child");
        let context = Context::default();
        let max = crate::limits::Limits::default().max_value_length;
        let effective =
            interpolate_pom(&inherit(&child, &parent, Flavor::Maven), &context, max).expect("fits");
        assert_eq!(effective.group.as_deref(), Some("org.example"));
        assert_eq!(effective.version.as_deref(), Some("2.1"));
        // The child's property wins over the parent's, also inside the parent's management.
        assert_eq!(
            effective.dependency_management[0].version.as_deref(),
            Some("1.5")
        );
        assert_eq!(effective.dependencies[0].group, "org.example");
        assert_eq!(effective.dependencies[0].version.as_deref(), Some("2.1"));
        assert_eq!(
            effective.dependencies[1].version.as_deref(),
            Some("${undefined}")
        );
        // A user property (-D) wins over the POM's.
        let mut user = Context::default();
        user.properties.insert("lib.version".into(), "9".into());
        let effective =
            interpolate_pom(&inherit(&child, &parent, Flavor::Maven), &user, max).expect("fits");
        assert_eq!(
            effective.dependency_management[0].version.as_deref(),
            Some("9")
        );
        // A cycle ends.
        let mut cyclic = Pom::default();
        cyclic.properties.insert("a".into(), "${b}".into());
        cyclic.properties.insert("b".into(), "${a}".into());
        assert!(interpolate("${a}", &cyclic, &context, max).is_ok());
    }

    #[test]
    fn a_property_bomb_stops_at_the_value_limit() {
        // p0 = "x", p(n) = ten times ${p(n-1)}: p12 would be 10^12 characters.
        let mut bomb = Pom::default();
        bomb.properties.insert("p0".into(), "x".into());
        for level in 1..=12 {
            bomb.properties.insert(
                format!("p{level}"),
                format!("${{p{}}}", level - 1).repeat(10),
            );
        }
        let context = Context::default();
        let started = std::time::Instant::now();
        let e = interpolate("${p12}", &bomb, &context, 64 << 10).expect_err("too long");
        assert_eq!(e.limit, 64 << 10);
        assert!(e.to_string().contains("--maven-max-value-length"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Within the limit it expands: p4 is 10^4 characters.
        let p4 = interpolate("${p4}", &bomb, &context, 64 << 10).expect("fits");
        assert_eq!(p4.len(), 10_000);
        let mut bomb_pom = bomb.clone();
        bomb_pom.version = Some("${p12}".into());
        assert!(interpolate_pom(&bomb_pom, &context, 64 << 10).is_err());
    }
}
