// log-exporter: the sidecar that ships every line the job writes to a sink. See README.md.
import { main } from "@buildpod/runtime";
import { exportCommand } from "./run.ts";

main({
  name: "log-exporter",
  description: "ship every line the job writes to Elasticsearch, fluentd, Cloud Logging or a file",
  envPrefix: "LOG_EXPORTER",
  commands: { export: exportCommand },
  defaultCommand: "export",
});
