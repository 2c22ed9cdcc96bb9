import { createRequire } from 'node:module';
import type { History } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * History <-> Temporal's JSON history format (what `temporal workflow show --output json` writes).
 *
 * Why not `historyToJSON`/`historyFromJSON` from @temporalio/common: in this dependency tree @temporalio/common and
 * @temporalio/proto each carry their own copy of protobufjs 8 (grpc's proto-loader holds protobufjs 7 at the top),
 * so common's protojson rejects proto's reflected types with "type must be a Type", and so does
 * Worker.runReplayHistory when handed JSON. Loading protojson from the copy @temporalio/proto uses gives the same
 * format, and keeps working once the tree has a single copy.
 */
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}
const protojson = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

export function historyToJson(history: History): string {
  return `${JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 2)}\n`;
}

/** Unknown fields (a newer server's) are tolerated, as the SDK's own loader does. */
export function historyFromJson(json: unknown): History {
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}
