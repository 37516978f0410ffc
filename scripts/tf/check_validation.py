#!/usr/bin/env python3
"""The module's variable validations, run by a real Terraform binary with no provider.

Usage: check_validation.py TERRAFORM VARIABLES_TF CASES_TSV GOOD_TFVARS

Copies VARIABLES_TF alone into a temporary module (no resources, so `terraform init` needs no
provider and no network), then:
- `terraform plan` with GOOD_TFVARS must succeed (valid values pass);
- each case of CASES_TSV (variable, HCL value, message) must fail with its message. Terraform
  reports every failing variable of a plan at once, so the cases run in rounds: round k sets
  the k-th bad value of every variable, and must report exactly those variables invalid.
Prints one line per case and a closing "N passed, N failed" line; exits 1 on any failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(tf: str, cwd: str, *args: str) -> tuple[int, str]:
    env = dict(os.environ, TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1")
    p = subprocess.run([tf, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def related_variables(variables_tf: str) -> dict[str, set[str]]:
    """Variable -> the other variables its validation conditions read, and vice versa."""
    text = open(variables_tf).read()
    rel: dict[str, set[str]] = {}
    blocks = re.split(r'^variable "', text, flags=re.M)[1:]
    for b in blocks:
        name = b.split('"', 1)[0]
        for other in set(re.findall(r"var\.([a-z_0-9]+)", b)) - {name}:
            rel.setdefault(name, set()).add(other)
            rel.setdefault(other, set()).add(name)
    return rel


def main(argv: list[str]) -> int:
    tf, variables_tf, cases_tsv, good = argv[1:5]
    cases: list[tuple[str, str, str]] = []
    with open(cases_tsv) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            var, value, message = line.rstrip("\n").split("\t")
            cases.append((var, value, message))

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="sluice-tf-validation.") as d:
        shutil.copy(variables_tf, os.path.join(d, "variables.tf"))
        shutil.copy(good, os.path.join(d, "good.tfvars"))
        rc, out = run(tf, d, "init", "-backend=false", "-input=false", "-no-color")
        if rc != 0:
            print(out)
            print("terraform init failed")
            return 1

        rc, out = run(tf, d, "plan", "-input=false", "-no-color", "-var-file=good.tfvars")
        if rc == 0:
            passed += 1
            print("ok    valid values pass (good.tfvars)")
        else:
            failed += 1
            print(f"FAIL  valid values were refused:\n{out}")

        # Terraform skips the validations of a variable whose conditions read another
        # variable that is itself invalid, so related variables never share a round.
        related = related_variables(variables_tf)
        rounds: list[list[tuple[str, str, str]]] = []
        for case in cases:
            for r in rounds:
                if all(c[0] != case[0] and c[0] not in related.get(case[0], set()) for c in r):
                    r.append(case)
                    break
            else:
                rounds.append([case])

        for r in rounds:
            args = ["plan", "-input=false", "-no-color", "-var-file=good.tfvars"]
            for var, value, _ in r:
                args += ["-var", f"{var}={value.strip(chr(34)) if value.startswith(chr(34)) else value}"]
            rc, out = run(tf, d, *args)
            text = flat(out)
            # Variables reported invalid (one variable may fail several validation blocks).
            reported = set(re.findall(r'Error: Invalid value for variable on variables\.tf line \d+: \d+: variable "([a-z_0-9]+)"', text))
            for var, value, message in r:
                ok = rc != 0 and flat(message) in text and f'variable "{var}"' in text
                if ok:
                    passed += 1
                    print(f"ok    {var} = {value}: {message}…")
                else:
                    failed += 1
                    print(f"FAIL  {var} = {value}: expected \"{message}…\"")
            if reported != {c[0] for c in r}:
                failed += 1
                print(f"FAIL  round setting {sorted(c[0] for c in r)} reported {sorted(reported)} invalid:\n{out}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
