# Builds one image per buildpod program from images/Dockerfile; see docs/images.md.
#
#   pnpm run build                                # the bundles the images copy
#   docker buildx bake                            # every container image, both platforms
#   docker buildx bake log-exporter --load --set '*.platform=linux/amd64'
#   REGISTRY=registry.example.com/ci TAG=0.1.0 docker buildx bake --push
#   docker buildx bake examples                   # the custom-sidecar example image

variable "REGISTRY" {
  default     = "ghcr.io/buildpod"
  description = "Registry and namespace the images are tagged into, without a trailing slash"
}

variable "TAG" {
  default     = "dev"
  description = "Image tag; also the org.opencontainers.image.version label"
}

variable "PLATFORMS" {
  default     = "linux/amd64,linux/arm64"
  description = "Comma-separated platforms to build for"
}

variable "BUILDKITE_AGENT_VERSION" {
  default     = "3.137.0"
  description = "buildkite-agent release baked into the agent-injector image (no leading v)"
}

variable "REVISION" {
  default     = ""
  description = "Source revision for the org.opencontainers.image.revision label (git rev-parse HEAD)"
}

variable "SOURCE" {
  default     = "https://github.com/buildpod/buildpod"
  description = "Source repository URL for the org.opencontainers.image.source label"
}

variable "NODE_VERSION" {
  default     = "24"
  description = "Node.js version of the official node image the runtime takes its binary from"
}

variable "ALPINE_VERSION" {
  default     = "3.24"
  description = "Alpine release of the runtime image (and of the node image it matches)"
}

group "default" {
  targets = [
    "repo-mirror",
    "artifact-downloader",
    "agent-injector",
    "log-exporter",
    "artifact-uploader",
    "metrics-exporter",
  ]
}

group "examples" {
  targets = ["custom-sidecar"]
}

# Settings every image shares; the targets below only pick their stage and tag.
target "_common" {
  context    = "."
  dockerfile = "images/Dockerfile"
  platforms  = split(",", PLATFORMS)
  args = {
    NODE_VERSION   = NODE_VERSION
    ALPINE_VERSION = ALPINE_VERSION
    SOURCE         = SOURCE
    VERSION        = TAG
    REVISION       = REVISION
  }
}

target "repo-mirror" {
  inherits = ["_common"]
  target   = "repo-mirror"
  tags     = ["${REGISTRY}/repo-mirror:${TAG}"]
}

target "artifact-downloader" {
  inherits = ["_common"]
  target   = "artifact-downloader"
  tags     = ["${REGISTRY}/artifact-downloader:${TAG}"]
}

target "agent-injector" {
  inherits = ["_common"]
  target   = "agent-injector"
  tags     = ["${REGISTRY}/agent-injector:${TAG}"]
  args = {
    BUILDKITE_AGENT_VERSION = BUILDKITE_AGENT_VERSION
  }
}

target "log-exporter" {
  inherits = ["_common"]
  target   = "log-exporter"
  tags     = ["${REGISTRY}/log-exporter:${TAG}"]
}

target "artifact-uploader" {
  inherits = ["_common"]
  target   = "artifact-uploader"
  tags     = ["${REGISTRY}/artifact-uploader:${TAG}"]
}

target "metrics-exporter" {
  inherits = ["_common"]
  target   = "metrics-exporter"
  tags     = ["${REGISTRY}/metrics-exporter:${TAG}"]
}

target "custom-sidecar" {
  inherits = ["_common"]
  target   = "custom-sidecar"
  tags     = ["${REGISTRY}/custom-sidecar:${TAG}"]
}
