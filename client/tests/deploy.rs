//! The Role `deploy/spark-namespace` gives submitters, rendered by the real `kubectl kustomize`,
//! grants exactly what `sparkstage submit` and `sparkstage apply` call.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use sparkstage::apply::APPLY_ACCESS;
use sparkstage::secret::KUBERNETES_ACCESS;
use sparkstage_tests::deploy::{check_document, find, grants, render};

#[test]
fn the_submitter_role_is_exactly_what_submit_and_apply_call() -> Result<()> {
    let documents = render("spark-namespace")?;
    for document in &documents {
        check_document(document)?;
    }
    let role = find(&documents, "Role", "sparkstage-submitter")?;
    let expected: BTreeSet<(String, String, String)> = KUBERNETES_ACCESS
        .iter()
        .chain(APPLY_ACCESS.iter())
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let granted = grants(role)?;
    ensure!(granted == expected, "{granted:?} != {expected:?}");
    let binding = find(&documents, "RoleBinding", "sparkstage-submitter")?;
    ensure!(binding["roleRef"]["name"] == "sparkstage-submitter");
    Ok(())
}
