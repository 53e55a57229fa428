/**
 * libxml2's xmllint as the judge of XML files: well-formedness and RELAX NG validity.
 *
 * Files are passed by path. `validateRelaxNgText` / `wellFormedText` feed the XML on stdin (xmllint reads "-"), so a
 * test needs no temporary file.
 */
import { spawnSync } from "node:child_process";

export interface XmllintResult {
    /** True when xmllint exited 0. */
    ok: boolean;
    /** xmllint's stdout and stderr, trimmed (the validity errors, or "<file> validates"). */
    output: string;
}

function xmllint(args: string[], input?: string): XmllintResult {
    const r = spawnSync("xmllint", args, { input, encoding: "utf8", timeout: 30_000 });
    if (r.error) return { ok: false, output: `xmllint could not run: ${r.error.message}` };
    return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/** True when xmllint is on PATH (Debian: libxml2-utils). */
export function xmllintAvailable(): boolean {
    const r = spawnSync("xmllint", ["--version"], { encoding: "utf8" });
    return !r.error && r.status === 0;
}

/** `xmllint --noout --relaxng <rng> <file>`. */
export function validateRelaxNg(rng: string, file: string): XmllintResult {
    return xmllint(["--noout", "--relaxng", rng, file]);
}

/** The same check for XML text (given on stdin). */
export function validateRelaxNgText(rng: string, xml: string): XmllintResult {
    return xmllint(["--noout", "--relaxng", rng, "-"], xml);
}

/** `xmllint --noout <file>`: well-formed XML. */
export function wellFormed(file: string): XmllintResult {
    return xmllint(["--noout", file]);
}

/** The same check for XML text (given on stdin). */
export function wellFormedText(xml: string): XmllintResult {
    return xmllint(["--noout", "-"], xml);
}
