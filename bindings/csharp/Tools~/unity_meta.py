#!/usr/bin/env python3
"""Unity .meta files of the UPM package (bindings/csharp).

A package installed from git is immutable: Unity ignores every asset in it that has no .meta
file ("has no meta file, but it's in an immutable folder"), so each file and folder of the
package carries one, committed, with a GUID unique in the package. Unity skips names that
start with a dot or end with "~" (Samples~, Tools~: copied on import, or never imported).

    unity_meta.py --check   every asset has a .meta with a valid, unique guid (tests/csharp/run.sh)
    unity_meta.py --write   create the missing ones (a new random guid each)

The native libraries are not committed (the build puts them in Plugins/), but their .meta
files are: they hold the plugin import settings (which platform and CPU each library is for).
"""
import os
import re
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Built, not committed: their .meta exists without the asset in a fresh clone.
PLUGINS = {
    "Plugins/Linux/x86_64/libtether.so": "linux_x86_64",
}

FOLDER = """fileFormatVersion: 2
guid: {guid}
folderAsset: yes
DefaultImporter:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

SCRIPT = """fileFormatVersion: 2
guid: {guid}
MonoImporter:
  externalObjects: {{}}
  serializedVersion: 2
  defaultReferences: []
  executionOrder: 0
  icon: {{instanceID: 0}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

ASMDEF = """fileFormatVersion: 2
guid: {guid}
AssemblyDefinitionImporter:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

MANIFEST = """fileFormatVersion: 2
guid: {guid}
PackageManifestImporter:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

TEXT = """fileFormatVersion: 2
guid: {guid}
TextScriptImporter:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

# Linux x86_64 player and the Linux editor; every other platform off.
PLUGIN_LINUX_X86_64 = """fileFormatVersion: 2
guid: {guid}
PluginImporter:
  externalObjects: {{}}
  serializedVersion: 2
  iconMap: {{}}
  executionOrder: {{}}
  defineConstraints: []
  isPreloaded: 0
  isOverridable: 1
  isExplicitlyReferenced: 0
  validateReferences: 1
  platformData:
  - first:
      : Any
    second:
      enabled: 0
      settings:
        Exclude Editor: 0
        Exclude Linux64: 0
        Exclude OSXUniversal: 1
        Exclude Win: 1
        Exclude Win64: 1
  - first:
      Any: 
    second:
      enabled: 0
      settings: {{}}
  - first:
      Editor: Editor
    second:
      enabled: 1
      settings:
        CPU: x86_64
        DefaultValueInitialized: true
        OS: Linux
  - first:
      Standalone: Linux64
    second:
      enabled: 1
      settings:
        CPU: x86_64
  - first:
      Standalone: OSXUniversal
    second:
      enabled: 0
      settings:
        CPU: None
  - first:
      Standalone: Win
    second:
      enabled: 0
      settings:
        CPU: None
  - first:
      Standalone: Win64
    second:
      enabled: 0
      settings:
        CPU: None
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""


def skipped(name):
    return name.startswith(".") or name.endswith("~") or name.endswith(".meta")


def assets():
    """Every asset path (relative, '/'-separated) Unity imports from the package."""
    found = set(PLUGINS)
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if not skipped(d))
        rel = os.path.relpath(dirpath, ROOT).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        if prefix:
            found.add(rel)
        for f in filenames:
            if not skipped(f):
                found.add(prefix + f)
    # Folders that hold only a plugin not built yet.
    for p in PLUGINS:
        parts = p.split("/")
        for i in range(1, len(parts)):
            found.add("/".join(parts[:i]))
    return sorted(found)


def template(rel):
    if rel in PLUGINS:
        return PLUGIN_LINUX_X86_64
    full = os.path.join(ROOT, rel)
    if os.path.isdir(full) or "." not in os.path.basename(rel):
        return FOLDER
    if rel.endswith(".cs"):
        return SCRIPT
    if rel.endswith(".asmdef"):
        return ASMDEF
    if rel == "package.json":
        return MANIFEST
    return TEXT


def main(argv):
    if len(argv) != 2 or argv[1] not in ("--check", "--write"):
        print(__doc__)
        return 2
    write = argv[1] == "--write"
    problems, guids = [], {}
    for rel in assets():
        meta = os.path.join(ROOT, rel + ".meta")
        if not os.path.exists(meta):
            if write:
                with open(meta, "w", newline="\n") as f:
                    f.write(template(rel).format(guid=uuid.uuid4().hex))
                print("wrote " + rel + ".meta")
            else:
                problems.append(rel + ": no .meta")
                continue
        with open(meta) as f:
            m = re.search(r"^guid: ([0-9a-f]{32})$", f.read(), re.M)
        if not m:
            problems.append(rel + ".meta: no valid guid line")
        elif m.group(1) in guids:
            problems.append(rel + ".meta: guid also used by " + guids[m.group(1)])
        else:
            guids[m.group(1)] = rel
    wanted = set(a + ".meta" for a in assets())
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not skipped(d)]
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
            if f.endswith(".meta") and rel not in wanted:
                problems.append(rel + ": a .meta without its asset")
    for p in problems:
        print(p)
    if not write:
        print("unity_meta: %d assets, %d problems" % (len(guids) + len([p for p in problems if "no .meta" in p]), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
