/**
 * Patterns that validation and the host scripts share have one definition: an interface name the config refuses is
 * refused by the bridge script too ('.' and '..' included), and the remote wrapper quotes with the scripts' own shq
 * (which refuses NUL).
 */
import { describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { remoteScript } from "../../components/machine";
import { isInterfaceName } from "../../components/names";
import { bridgeScripts } from "../../components/scripts/bridge";
import { loadStack } from "../program/run-under-mocks";

describe("shared name patterns", () => {
    it("interface names: the config and the bridge script accept and refuse the same names", () => {
        for (const name of [".", "..", "...", ".br", "", "a".repeat(16), "br lab", "br/lab"]) {
            expect(isInterfaceName(name), name).toBe(false);
            expect(() => bridgeScripts("lab", { name }), name).toThrow(/is not a Linux interface name/);
            const raw = loadStack("lab") as { hosts: { bridge: { name: string } }[] };
            raw.hosts[0].bridge.name = name;
            expect(() => validateLabConfig(raw, { stack: "lab", secretKeys: new Set(), readFile: () => undefined }), name).toThrow(/hosts\[0\]\.bridge\.name/);
        }
        for (const name of ["br-lab", "br0", "a.b", "br.10", "_x", "a".repeat(15)]) {
            expect(isInterfaceName(name), name).toBe(true);
            expect(() => bridgeScripts("lab", { name }), name).not.toThrow();
        }
    });

    it("the remote wrapper quotes with shq: any text reaches sh -c unchanged, NUL is refused", () => {
        expect(remoteScript("echo 'it''s'")).toBe(`exec /bin/sh -c 'echo '\\''it'\\'''\\''s'\\'''`);
        expect(() => remoteScript("a\0b")).toThrow(/NUL/);
    });
});
