//! POMs and repository metadata as a repository sends them, through the effective model: any
//! bytes parse or fail cleanly, and the model (profiles, inheritance, interpolation within the
//! value limit) never panics and stays within the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage_maven::limits::Limits;
use sparkstage_maven::model::{Context, Flavor, inherit, interpolate_pom, with_profiles};
use sparkstage_maven::pom::Pom;
use sparkstage_maven::repo::{metadata_versions, snapshot_version};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = metadata_versions(&text);
    let _ = snapshot_version(&text, "1.0-SNAPSHOT", "jar", None);
    let Ok(pom) = Pom::parse(&text) else {
        return;
    };
    let max = Limits::default().max_value_length;
    for flavor in [Flavor::Maven, Flavor::Ivy] {
        let context = Context {
            flavor,
            ..Context::default()
        };
        let own = with_profiles(&pom, &context);
        // The POM as its own parent: inheritance of everything it declares.
        let effective = inherit(&own, &own, flavor);
        if let Ok(model) = interpolate_pom(&effective, &context, max) {
            for d in model.dependencies.iter().chain(&model.dependency_management) {
                assert!(d.group.len() <= max && d.artifact.len() <= max);
                assert!(d.version.as_ref().is_none_or(|v| v.len() <= max));
            }
            let _ = model.text_size();
        }
    }
});
