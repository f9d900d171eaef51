// The dead-letter file: records a sink refused for good (e.g. an Elasticsearch mapping error),
// one JSON line each, with the sink's status and reason, so nothing is silently lost.
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { recordId } from "./record.ts";
import type { Rejection } from "./sinks/sink.ts";

/** Appends rejected records to a JSON-lines file. */
export class DeadLetterFile {
  readonly path: string;
  /** How many records were written so far. */
  count = 0;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Writes the rejections synchronously: they must be on disk before the checkpoint that
   * covers them is committed, or a crash in between would lose them.
   */
  write(sink: { name: string; type: string }, rejections: readonly Rejection[]): void {
    if (rejections.length === 0) return;
    mkdirSync(dirname(this.path), { recursive: true });
    const lines = rejections.map((r) =>
      JSON.stringify({
        "@timestamp": new Date(r.record.time).toISOString(),
        // The sink's name in the sinks file, as the summary and the logs call it.
        sink: sink.name,
        sink_type: sink.type,
        status: r.status,
        reason: r.reason,
        id: recordId(r.record),
        "log.file.path": r.record.origin.path,
        stream: r.record.origin.stream,
        "log.offset": r.record.offset,
        message: r.record.message,
      }),
    );
    appendFileSync(this.path, `${lines.join("\n")}\n`);
    this.count += rejections.length;
  }
}
