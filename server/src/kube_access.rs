//! What the server asks of the Kubernetes API (with `--kubernetes`), call by call: the RBAC of
//! `deploy/` grants exactly this (`tests/tests/deploy.rs` checks `deploy/base/rbac.yaml` against
//! it). A new call in the code comes with a line here, and the check then asks for the grant.

/// One kind of call: a verb on a resource of an API group (`""` is the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    /// Which code makes it.
    pub by: &'static str,
}

pub const SERVER_ACCESS: [Access; 4] = [
    Access {
        group: "",
        resource: "pods",
        verb: "list",
        by: "lifecycle::kube_owners: the watcher's list of Spark's pods, cluster-wide",
    },
    Access {
        group: "",
        resource: "pods",
        verb: "watch",
        by: "lifecycle::kube_owners: the watch of Spark's pods",
    },
    Access {
        group: "",
        resource: "namespaces",
        verb: "get",
        by: "lifecycle::kube_owners: whether a bundle's namespace is gone",
    },
    Access {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        verb: "create",
        by: "pod_identity::KubeTokenReviewer: a pod's projected token",
    },
];
