import { main } from "@buildpod/runtime";

// Placeholder until the container lands: --help says so and a run exits 1.
main({
  name: "metrics-exporter",
  description: "see README.md",
  envPrefix: "METRICS_EXPORTER",
  commands: {},
  notBuilt: "this container is being built; see its issue",
});
