//! AdmissionReview bodies as anyone who reaches the webhook's port may send them: any bytes are
//! read or refused cleanly; a pod's annotations are read as the webhook reads them, and when
//! they are accepted, the injection's patch applies to the object exactly as sent (as the API
//! server applies it), gives a pod with our init container, and injecting into that pod again
//! patches nothing.
#![no_main]

use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use sparkstage_injection::pod::has_init_container;
use sparkstage_injection::webhook::asked;
use sparkstage_injection::{Injection, Role, TokenVolume};

fuzz_target!(|data: &[u8]| {
    let Ok(review) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let object = &review["request"]["object"];
    let Ok(pod) = serde_json::from_value::<Pod>(object.clone()) else {
        return;
    };
    let Ok(asked) = asked(&pod) else {
        return;
    };
    // What the webhook refuses before it injects.
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) || has_init_container(&pod) {
        return;
    }
    let args = asked.init_args("http://sparkstage.sparkstage-system:10000".parse().ok());
    let injection = Injection {
        image: "sparkstage-init:fuzz".to_owned(),
        image_pull_policy: None,
        token: TokenVolume::ServiceAccount,
        args,
    };
    let role = Role::of_pod(&pod);
    let which = asked.spark_container(role);
    let Ok(patch) = injection.patch(&pod, role, which) else {
        return;
    };
    let mut sent = object.clone();
    sparkstage_injection::json_patch::patch(&mut sent, &patch)
        .expect("the patch applies to the object as sent");
    let patched: Pod = serde_json::from_value(sent).expect("the patched object is a Pod");
    assert!(has_init_container(&patched));
    let again = injection
        .patch(&patched, role, which)
        .expect("a patched pod takes the injection again");
    assert!(again.0.is_empty(), "a second injection patches nothing: {again:?}");
});
