// Validates ServiceMonitor documents against the Prometheus Operator's schema (the generated
// validators of @kubernetes-models/prometheus-operator). Usage: node servicemonitor.mjs FILE...
// Prints one line per document; exits 1 if any does not validate or is of another kind.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (doc === null || doc === undefined) continue;
    const what = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    if (doc.apiVersion !== "monitoring.coreos.com/v1" || doc.kind !== "ServiceMonitor") {
      console.log(`ERROR ${what}: not a monitoring.coreos.com/v1 ServiceMonitor`);
      failed = true;
      continue;
    }
    try {
      new ServiceMonitor(doc).validate();
      console.log(`OK ${what}`);
    } catch (e) {
      console.log(`ERROR ${what}: ${e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
