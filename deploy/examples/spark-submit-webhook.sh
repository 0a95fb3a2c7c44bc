#!/usr/bin/env bash
# A plain spark-submit, without the wrapper: the pods ask the webhook for the init container with
# a label and an annotation. The bundle is staged first, for the pods' namespace (pod identity
# opens only that namespace's bundles):
set -euo pipefail
id=$(sparkstage upload --server http://127.0.0.1:10000 --namespace analytics \
    target/nightly.jar lib/udf.jar)
spark-submit --master k8s://https://kubernetes.example.com:6443 --deploy-mode cluster \
    --name nightly \
    --conf spark.kubernetes.namespace=analytics \
    --conf spark.kubernetes.container.image=apache/spark:4.0.0 \
    --conf spark.kubernetes.driver.label.sparkstage.io/inject=true \
    --conf spark.kubernetes.executor.label.sparkstage.io/inject=true \
    --conf spark.kubernetes.driver.annotation.sparkstage.io/bundle="$id" \
    --conf spark.kubernetes.executor.annotation.sparkstage.io/bundle="$id" \
    --jars local:///var/spark-data/spark-jars/udf.jar \
    --class com.example.Nightly local:///var/spark-data/spark-jars/nightly.jar
