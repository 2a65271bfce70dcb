import { gunzipSync } from 'node:zlib';

/** The most of one body an audit record holds; a larger one is left out and the record says so. */
export const MAX_AUDITED_BODY = 256 * 1024;

/** Collects a body's first bytes, up to MAX_AUDITED_BODY, for a record at level Request or RequestResponse. */
export class BodyCollector {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #over = false;

  add(chunk: Buffer): void {
    if (this.#over) return;
    this.#size += chunk.length;
    if (this.#size > MAX_AUDITED_BODY) {
      this.#over = true;
      this.#chunks.length = 0;
    } else this.#chunks.push(chunk);
  }

  /** The body as the record's `requestObject` / `responseObject`, or why it is left out. */
  object(contentType: string | undefined, encoding: string | undefined): { readonly object: unknown } | { readonly omitted: string } {
    if (this.#over) return { omitted: `larger than ${MAX_AUDITED_BODY} bytes` };
    if (this.#size === 0) return { omitted: 'empty' };
    let bytes = Buffer.concat(this.#chunks);
    try {
      if (encoding === 'gzip') bytes = gunzipSync(bytes, { maxOutputLength: MAX_AUDITED_BODY });
      else if (encoding !== undefined && encoding !== 'identity') return { omitted: `content-encoding ${encoding}` };
    } catch {
      return { omitted: `larger than ${MAX_AUDITED_BODY} bytes, or not gzip` };
    }
    // kube records objects; Portcullis records what it can read as JSON (kubectl's JSON, its
    // patches, server-side apply's YAML when it is JSON) and names what it cannot (protobuf).
    try {
      return { object: JSON.parse(bytes.toString('utf8')) };
    } catch {
      return { omitted: `not JSON (${contentType ?? 'no content-type'})` };
    }
  }
}
