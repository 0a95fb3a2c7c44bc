//! POM files, read as written: the raw model of one POM, before inheritance, interpolation and
//! profile activation (which the model builder applies). Values are kept as strings, `${...}`
//! included; elements are matched by local name, so the POM namespace may or may not be present.

use std::collections::BTreeMap;

use crate::coords::Exclusion;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pom {
    pub group: Option<String>,
    pub artifact: Option<String>,
    pub version: Option<String>,
    pub packaging: Option<String>,
    pub parent: Option<Parent>,
    pub properties: BTreeMap<String, String>,
    pub dependency_management: Vec<Dependency>,
    pub dependencies: Vec<Dependency>,
    pub profiles: Vec<Profile>,
    pub relocation: Option<Relocation>,
    /// `<repositories>`: (id, url).
    pub repositories: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parent {
    pub group: String,
    pub artifact: String,
    pub version: String,
    pub relative_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependency {
    pub group: String,
    pub artifact: String,
    pub version: Option<String>,
    /// `<type>`, `jar` when absent.
    pub kind: Option<String>,
    pub classifier: Option<String>,
    /// `<scope>`, `compile` when absent (after dependency management).
    pub scope: Option<String>,
    /// `<optional>` as written (`true`, `false`, or a property).
    pub optional: Option<String>,
    pub exclusions: Vec<Exclusion>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub id: Option<String>,
    pub activation: Activation,
    pub properties: BTreeMap<String, String>,
    pub dependency_management: Vec<Dependency>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub active_by_default: bool,
    /// `<jdk>`: a prefix (`11`), a negated prefix (`!1.8`) or a range (`[11,)`).
    pub jdk: Option<String>,
    /// `<property>`: name (`!name` for absent) and optional value (`!value` for not equal).
    pub property: Option<(String, Option<String>)>,
    pub os: Option<Os>,
    /// `<file><exists>` / `<missing>`: files cannot be checked for a remote POM; kept so the
    /// model builder can decide.
    pub file_exists: Option<String>,
    pub file_missing: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Os {
    pub name: Option<String>,
    pub family: Option<String>,
    pub arch: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relocation {
    pub group: Option<String>,
    pub artifact: Option<String>,
    pub version: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PomError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("the root element is <{0}>, not <project>")]
    NotAProject(String),
    #[error("a dependency without groupId or artifactId")]
    IncompleteDependency,
    #[error("a <parent> without groupId, artifactId or version")]
    IncompleteParent,
    #[error(
        "the document type declares entities, which Maven does not expand (and which can make a \
         small file expand without bound); refused"
    )]
    Entities,
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// All the text inside `node` (CDATA included), trimmed.
fn node_text(node: Node<'_, '_>) -> String {
    let t: String = node
        .descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect();
    t.trim().to_owned()
}

/// The trimmed text of child `name`; `None` when absent or empty.
fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    let t = node_text(child(node, name)?);
    (!t.is_empty()).then_some(t)
}

fn properties(node: Option<Node<'_, '_>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(node) = node {
        for p in node.children().filter(|c| c.is_element()) {
            out.insert(p.tag_name().name().to_owned(), node_text(p));
        }
    }
    out
}

fn dependencies(node: Option<Node<'_, '_>>) -> Result<Vec<Dependency>, PomError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    children(node, "dependency")
        .map(|d| {
            let group = text(d, "groupId").ok_or(PomError::IncompleteDependency)?;
            let artifact = text(d, "artifactId").ok_or(PomError::IncompleteDependency)?;
            let exclusions = child(d, "exclusions")
                .map(|e| {
                    children(e, "exclusion")
                        .map(|x| Exclusion {
                            group: text(x, "groupId").unwrap_or_else(|| "*".to_owned()),
                            artifact: text(x, "artifactId").unwrap_or_else(|| "*".to_owned()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Dependency {
                group,
                artifact,
                version: text(d, "version"),
                kind: text(d, "type"),
                classifier: text(d, "classifier"),
                scope: text(d, "scope"),
                optional: text(d, "optional"),
                exclusions,
            })
        })
        .collect()
}

fn management(node: Node<'_, '_>) -> Result<Vec<Dependency>, PomError> {
    dependencies(child(node, "dependencyManagement").and_then(|m| child(m, "dependencies")))
}

impl Pom {
    pub fn parse(xml: &str) -> Result<Self, PomError> {
        // A `<!DOCTYPE project>` line is accepted, as Maven's parser accepts it; entity
        // declarations are not (one entity referenced many times is the "billion laughs").
        if xml
            .find("<!DOCTYPE")
            .is_some_and(|at| xml[at..].contains("<!ENTITY"))
        {
            return Err(PomError::Entities);
        }
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(xml, options).map_err(|e| {
            PomError::Xml(sparkstage_api::shown::outside(
                &e.to_string(),
                sparkstage_api::shown::OUTSIDE_TEXT_CHARS,
            ))
        })?;
        let root = doc.root_element();
        if root.tag_name().name() != "project" {
            return Err(PomError::NotAProject(root.tag_name().name().to_owned()));
        }
        let parent = match child(root, "parent") {
            Some(p) => Some(Parent {
                group: text(p, "groupId").ok_or(PomError::IncompleteParent)?,
                artifact: text(p, "artifactId").ok_or(PomError::IncompleteParent)?,
                version: text(p, "version").ok_or(PomError::IncompleteParent)?,
                relative_path: text(p, "relativePath"),
            }),
            None => None,
        };
        let mut profiles = Vec::new();
        if let Some(list) = child(root, "profiles") {
            for p in children(list, "profile") {
                let mut activation = Activation::default();
                if let Some(a) = child(p, "activation") {
                    activation.active_by_default =
                        text(a, "activeByDefault").is_some_and(|v| v == "true");
                    activation.jdk = text(a, "jdk");
                    activation.property = child(a, "property")
                        .and_then(|prop| text(prop, "name").map(|n| (n, text(prop, "value"))));
                    activation.os = child(a, "os").map(|os| Os {
                        name: text(os, "name"),
                        family: text(os, "family"),
                        arch: text(os, "arch"),
                        version: text(os, "version"),
                    });
                    if let Some(file) = child(a, "file") {
                        activation.file_exists = text(file, "exists");
                        activation.file_missing = text(file, "missing");
                    }
                }
                profiles.push(Profile {
                    id: text(p, "id"),
                    activation,
                    properties: properties(child(p, "properties")),
                    dependency_management: management(p)?,
                    dependencies: dependencies(child(p, "dependencies"))?,
                });
            }
        }
        let relocation = child(root, "distributionManagement")
            .and_then(|d| child(d, "relocation"))
            .map(|r| Relocation {
                group: text(r, "groupId"),
                artifact: text(r, "artifactId"),
                version: text(r, "version"),
                message: text(r, "message"),
            });
        let repositories = child(root, "repositories")
            .map(|r| {
                children(r, "repository")
                    .filter_map(|repo| Some((text(repo, "id")?, text(repo, "url")?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            group: text(root, "groupId"),
            artifact: text(root, "artifactId"),
            version: text(root, "version"),
            packaging: text(root, "packaging"),
            parent,
            properties: properties(child(root, "properties")),
            dependency_management: management(root)?,
            dependencies: dependencies(child(root, "dependencies"))?,
            profiles,
            relocation,
            repositories,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent>
    <groupId>org.example</groupId><artifactId>parent</artifactId><version>3</version>
  </parent>
  <artifactId>lib</artifactId>
  <version>${revision}</version>
  <packaging>bundle</packaging>
  <properties><revision>1.2</revision><guava.version>32.1.3-jre</guava.version></properties>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.example</groupId><artifactId>bom</artifactId><version>1</version>
      <type>pom</type><scope>import</scope></dependency>
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>com.google.guava</groupId><artifactId>guava</artifactId>
      <version>${guava.version}</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
    <dependency><groupId>org.example</groupId><artifactId>util</artifactId>
      <type>test-jar</type><scope>test</scope><optional>true</optional></dependency>
  </dependencies>
  <profiles>
    <profile><id>linux</id>
      <activation><os><family>!windows</family></os></activation>
      <dependencies><dependency><groupId>a</groupId><artifactId>native</artifactId>
        <classifier>linux-x86_64</classifier></dependency></dependencies>
    </profile>
    <profile><id>default</id><activation><activeByDefault>true</activeByDefault>
      <property><name>!skip</name></property><jdk>[11,)</jdk></activation></profile>
  </profiles>
  <distributionManagement><relocation><groupId>org.new</groupId></relocation></distributionManagement>
</project>"#;

    #[test]
    fn reads_what_resolution_needs() {
        let pom = Pom::parse(POM).expect("parses");
        assert_eq!(pom.artifact.as_deref(), Some("lib"));
        assert_eq!(pom.group, None, "inherited from the parent later");
        assert_eq!(pom.version.as_deref(), Some("${revision}"));
        assert_eq!(pom.packaging.as_deref(), Some("bundle"));
        assert_eq!(pom.parent.as_ref().map(|p| p.version.as_str()), Some("3"));
        assert_eq!(pom.properties["guava.version"], "32.1.3-jre");
        assert_eq!(
            pom.dependency_management[0].scope.as_deref(),
            Some("import")
        );
        let guava = &pom.dependencies[0];
        assert_eq!(guava.version.as_deref(), Some("${guava.version}"));
        assert_eq!(guava.exclusions[0].group, "*");
        let util = &pom.dependencies[1];
        assert_eq!(
            (util.kind.as_deref(), util.optional.as_deref()),
            (Some("test-jar"), Some("true"))
        );
        assert_eq!(pom.profiles.len(), 2);
        let os = pom.profiles[0].activation.os.as_ref().expect("os");
        assert_eq!(os.family.as_deref(), Some("!windows"));
        assert_eq!(
            pom.profiles[0].dependencies[0].classifier.as_deref(),
            Some("linux-x86_64")
        );
        let a = &pom.profiles[1].activation;
        assert!(a.active_by_default);
        assert_eq!(a.property, Some(("!skip".to_owned(), None)));
        assert_eq!(a.jdk.as_deref(), Some("[11,)"));
        assert_eq!(
            pom.relocation.as_ref().and_then(|r| r.group.as_deref()),
            Some("org.new")
        );
    }

    #[test]
    fn bad_poms_are_errors() {
        assert!(matches!(Pom::parse("<project>"), Err(PomError::Xml(_))));
        let doctype =
            "<?xml version=\"1.0\"?>\n<!DOCTYPE project>\n<project><groupId>g</groupId></project>";
        assert_eq!(
            Pom::parse(doctype).map(|p| p.group),
            Ok(Some("g".to_owned()))
        );
        let laughs = format!(
            "<!DOCTYPE project [<!ENTITY big \"{}\">]><project><groupId>{}</groupId></project>",
            "x".repeat(100),
            "&big;".repeat(1000)
        );
        assert_eq!(Pom::parse(&laughs), Err(PomError::Entities));
        assert!(matches!(
            Pom::parse("<settings/>"),
            Err(PomError::NotAProject(_))
        ));
        assert_eq!(
            Pom::parse(
                "<project><dependencies><dependency><groupId>g</groupId></dependency></dependencies></project>"
            ),
            Err(PomError::IncompleteDependency)
        );
    }
}
