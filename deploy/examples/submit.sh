#!/usr/bin/env bash
# `sparkstage submit` against the installed server: stages the local jar and file, has
# --packages resolved by the server, and runs spark-submit in cluster mode. From a laptop, reach
# the Service first:
#   kubectl -n sparkstage-system port-forward svc/sparkstage 10000:10000 &
# The upload token is the Secret sparkstage-upload-token's.
set -euo pipefail
export SPARKSTAGE_UPLOAD_TOKEN="$(kubectl -n sparkstage-system get secret sparkstage-upload-token \
    -o jsonpath='{.data.token}' | base64 -d)"
sparkstage submit \
    --server http://127.0.0.1:10000 \
    --internal-server http://sparkstage.sparkstage-system.svc:10000 \
    --inject webhook \
    -- \
    spark-submit --master k8s://https://kubernetes.example.com:6443 --deploy-mode cluster \
    --name nightly \
    --conf spark.kubernetes.namespace=analytics \
    --conf spark.kubernetes.container.image=apache/spark:4.0.0 \
    --packages org.apache.commons:commons-text:1.12.0 \
    --files conf/lookup.csv \
    --class com.example.Nightly target/nightly.jar
