"""The what-if analysis: the issue's scenarios, each checked against what the table and the
findings say (vrrpd/whatif.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from vrrpd import whatif
from vrrpd.spec.load import load_manifests
from vrrpd.whatif import Analysis, Failure, Outcome

ROOT = Path(__file__).resolve().parents[2]


def manifest(
    priorities: Sequence[int],
    probes: str = "",
    *,
    name: str = "web",
    vrid: int = 51,
    preempt: str = "{mode: Always}",
    peers: bool = True,
    extra: str = "",
) -> str:
    nodes = "\n".join(
        f"    - {{nodeName: n{i}, priority: {p}}}" for i, p in enumerate(priorities, 1)
    )
    listed = "\n".join(
        f"    - {{nodeName: n{i}, address: 192.168.77.{10 + i}}}"
        for i in range(1, len(priorities) + 1)
    )
    return (
        "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  addresses: [192.168.77.{100 + vrid - 51}/24]\n"
        f"  vrid: {vrid}\n"
        f"  preempt: {preempt}\n"
        f"  nodePriorities:\n{nodes}\n"
        + (f"  peers:\n{listed}\n" if peers else "")
        + (f"  probes:\n{probes}" if probes else "")
        + extra
    )


def probe(weight: int, name: str = "hc") -> str:
    """A script probe: passing or failing (a file probe's number is weighted instead)."""
    return f"    - {{name: {name}, exec: {{command: [/usr/local/bin/{name}]}}, weight: {weight}}}\n"


def analyses(text: str, nodes: Sequence[str] = (), *, pairs: bool = True) -> list[Analysis]:
    vips = load_manifests(text)
    configs, _ = whatif.resolve(vips, sorted({*whatif.named_nodes(vips), *nodes}))
    return whatif.analyse_all(configs, pairs=pairs)


def analysis(text: str, nodes: Sequence[str] = ()) -> Analysis:
    (one,) = analyses(text, nodes)
    return one


def row(a: Analysis, failure: str) -> Outcome:
    for o in (*a.singles, *a.pairs):
        if " + ".join(map(str, o.failures)) == failure:
            return o
    raise AssertionError(f"no row {failure!r} in {[str(o.failures) for o in a.singles]}")


def codes(a: Analysis, severity: str | None = None) -> list[str]:
    return [f.code for f in a.findings if severity is None or f.severity == severity]


# --- the scenarios ---------------------------------------------------------------------


def test_80_and_70_with_minus_20_moves_the_vip() -> None:
    a = analysis(manifest((80, 70), probe(-20)))
    assert a.holder == ("n1",)
    failed = row(a, "probe hc fails on n1")
    assert (failed.before, failed.after, failed.recovered) == (("n1",), ("n2",), ("n1",))
    assert "80 - 20 (hc) = 60: below n2's 70, so n2 takes over at once" in failed.why
    assert row(a, "probe hc fails on n2").after == ("n1",)
    assert row(a, "n1 down").after == ("n2",)
    assert a.findings == ()


def test_100_and_70_with_minus_20_never_moves_it_and_says_what_would() -> None:
    a = analysis(manifest((100, 70), probe(-20)))
    failed = row(a, "probe hc fails on n1")
    assert not failed.moved and "still above n2's 70" in failed.why
    (finding,) = a.findings
    assert (finding.code, finding.severity, finding.node, finding.probe) == (
        "NeverMoves", "warning", "n1", "hc",
    )  # fmt: skip
    assert finding.message == (
        "probe hc (weight -20) failing never moves the VIP: n1 goes from 100 to "
        "100 - 20 (hc) = 80, still above n2's 70; weight -31 would move it "
        "(or weight 0: FAULT)"
    )
    # The weight it names is the smallest that works: -30 ties (70 = 70), and a tie stays.
    fixed = analysis(manifest((100, 70), probe(-31)))
    assert row(fixed, "probe hc fails on n1").after == ("n2",) and fixed.findings == ()
    tied = analysis(manifest((100, 70), probe(-30)))
    assert row(tied, "probe hc fails on n1").after == ("n1",)
    assert "equal to n2's 70" in tied.findings[0].message


def test_positive_weights_count_while_the_probe_passes() -> None:
    # Both get +20 while healthy: 120 and 110; n1 losing its bonus (100) falls below n2.
    a = analysis(manifest((100, 90), probe(20)))
    assert [s.arithmetic() for s in a.steady] == ["100 + 20 (hc) = 120", "90 + 20 (hc) = 110"]
    failed = row(a, "probe hc fails on n1")
    assert failed.after == ("n2",) and "n1 120 → 100: below n2's 110" in failed.why
    assert a.findings == ()
    # With a gap of 30 a bonus of 20 cannot move it: 31 would.
    gap = analysis(manifest((100, 70), probe(20)))
    (finding,) = gap.findings
    assert finding.code == "NeverMoves"
    assert "n1 goes from 120 to 100, still above n2's 90; weight 31 would move it" in (
        finding.message
    )


def test_a_file_probe_fails_by_holding_1_its_number_times_the_weight() -> None:
    # keepalived track_file: steady at 0 (adds nothing), failed at 1 (adds the weight).
    file = "    - {name: drain, file: {path: /run/drain}, weight: -20}\n"
    a = analysis(manifest((100, 90), file))
    assert [s.arithmetic() for s in a.steady] == ["100", "90"]
    failed = row(a, "probe drain fails on n1")
    assert failed.after == ("n2",) and "n1 100 - 20 (drain) = 80: below n2's 90" in failed.why
    # With a positive weight the number raises the priority: a backup grows stronger.
    raised = analysis(manifest((100, 70), file.replace("-20", "20")))
    why = row(raised, "probe drain fails on n2").why
    assert why == "n2 70 + 20 (drain) = 90: a stronger backup, still below n1: n1 keeps the VIP"


def test_a_positive_weight_on_the_backup_alone_makes_it_the_holder() -> None:
    # Per-node files: only n2 runs the probe (a keepalived pair converted node by node).
    backup = manifest((100, 80), probe(30))
    plain = manifest((100, 80))
    configs = {
        "n1": whatif.resolve(load_manifests(plain), ["n1"])[0]["n1"],
        "n2": whatif.resolve(load_manifests(backup), ["n2"])[0]["n2"],
    }
    (a,) = whatif.analyse_all(configs)
    assert a.holder == ("n2",)
    assert [str(s) for s in a.steady] == ["100", "80 + 30 (hc) = 110"]
    failed = row(a, "probe hc fails on n2")
    assert (failed.after, failed.recovered) == (("n1",), ("n2",))
    assert "n2 110 → 80: below n1's 100, so n1 takes over at once" in failed.why


def test_weight_0_means_fault_and_both_failing_leaves_nobody() -> None:
    a = analysis(manifest((100, 70), probe(0)))
    failed = row(a, "probe hc fails on n1")
    assert failed.after == ("n2",)
    assert "n1 in FAULT (probe hc failing, weight 0): n1 resigns (priority 0)" in failed.why
    backup = row(a, "probe hc fails on n2")
    assert backup.after == ("n1",) and "a backup fewer" in backup.why
    both = row(a, "probe hc fails on n1 + probe hc fails on n2")
    assert both.after == () and both.recovered == ("n1",)
    assert "no node is left to hold the VIP" in both.why
    assert a.findings == ()


def test_preempt_never_only_moves_through_fault() -> None:
    a = analysis(manifest((100, 70), probe(-50), preempt="{mode: Never}"))
    failed = row(a, "probe hc fails on n1")
    assert failed.after == ("n1",)
    assert "preempt Never: n1 keeps the VIP while it advertises, though n2 has 70" in failed.why
    down = row(a, "n1 down")
    assert (down.after, down.recovered) == (("n2",), ("n2",))
    assert "it stays on n2 once the failure clears (preempt Never)" in down.why
    (finding,) = a.findings
    assert finding.code == "OnlyThroughFault" and finding.severity == "warning"
    assert "never moves the VIP under preempt Never" in finding.message
    assert "set weight: 0" in finding.message
    # Weight 0 under Never: FAULT moves it, nothing to warn about.
    fault = analysis(manifest((100, 70), probe(0), preempt="{mode: Never}"))
    assert row(fault, "probe hc fails on n1").after == ("n2",) and fault.findings == ()


def test_preempt_delay_takes_over_after_the_delay() -> None:
    a = analysis(manifest((100, 70), probe(-50), preempt="{mode: Delay, delay: 5s}"))
    failed = row(a, "probe hc fails on n1")
    assert failed.after == ("n2",) and "n2 takes over after the 5s preempt delay" in failed.why
    assert "back to n1 once it clears (after the 5s preempt delay)" in failed.why


def test_equal_priorities_are_decided_by_the_higher_address() -> None:
    a = analysis(manifest((100, 100), probe(-20)))
    assert a.holder == ("n2",)  # 192.168.77.12 > .11
    (tie,) = [f for f in a.findings if f.code == "Tie"]
    assert tie.severity == "note"  # configured equal: any of them will do
    assert "n1 and n2 tie at 100" in tie.message and "(n2, 192.168.77.12)" in tie.message
    # A live master at equal priority keeps the VIP: a backup preempts only a lower one.
    down = row(a, "n2 down")
    assert (down.after, down.recovered) == (("n1",), ("n1",))
    assert "a backup takes over only from a lower-priority master" in down.why


def test_a_tie_with_unknown_addresses_lists_every_node_that_could_win() -> None:
    text = manifest((150, 100, 100), probe(-60), peers=False)
    a = analysis(text)
    assert a.addresses == {"n1": None, "n2": None, "n3": None}
    failed = row(a, "probe hc fails on n1")
    assert failed.after == ("n2", "n3") and failed.tie == ("n2", "n3")
    assert "not every node has a spec.peers address" in failed.why
    assert row(a, "probe hc fails on n1 + probe hc fails on n2").after == ("n3",)


def test_a_failure_that_makes_a_tie_is_a_warning() -> None:
    a = analysis(manifest((100, 80), probe(-20)))
    (finding,) = a.findings
    assert finding.code == "NeverMoves"
    assert "100 - 20 (hc) = 80, equal to n2's 80; weight -21 would move it" in finding.message


def test_three_nodes_a_weight_that_moves_it_from_one_holder_only() -> None:
    a = analysis(manifest((100, 90, 50), probe(-20)))
    assert row(a, "probe hc fails on n1").after == ("n2",)
    assert row(a, "n1 down").after == ("n2",)
    assert row(a, "probe hc fails on n1 + probe hc fails on n3").after == ("n2",)
    assert row(a, "probe hc fails on n1 + probe hc fails on n2").after == ("n1",)
    moves = next(f for f in a.findings if f.code == "MovesFromSome")
    assert moves.message == (
        "probe hc (weight -20) moves the VIP away from n1 but not from n2: n2 (holding after "
        "n1 down) goes from 90 to 90 - 20 (hc) = 70, still above n3's 50; weight -41 would "
        "move it (or weight 0: FAULT)"
    )
    never = next(f for f in a.findings if f.code == "NeverMaster")
    assert never.node == "n3" and never.severity == "note"
    assert not analysis(manifest((100, 90, 50), probe(-41))).warnings


def test_clamping_that_makes_a_tie_is_a_warning() -> None:
    a = analysis(manifest((250, 240), probe(20)))
    clamped = next(f for f in a.findings if f.code == "Clamped")
    assert clamped.severity == "warning"
    assert clamped.message == (
        "n1 250 + 20 (hc) = 270 → 254 and n2 240 + 20 (hc) = 260 → 254 with every probe "
        "passing: priorities stop at 1 and 254, so they tie"
    )
    # Clamping at 1 that changes no order is only a note.
    low = analysis(manifest((100, 90), probe(-95)))
    (note,) = [f for f in low.findings if f.code == "Clamped"]
    assert note.severity == "note"
    assert note.message.startswith("n2 90 - 95 (hc) = -5 → 1 after probe hc fails on n2:")


def test_no_weight_can_move_a_vip_from_a_backup_at_priority_1() -> None:
    a = analysis(manifest((100, 1), probe(-20)))
    (finding,) = a.warnings
    assert "no weight can (priorities stop at 1 and 254); use weight: 0" in finding.message


def test_tracked_interfaces_fault_the_node() -> None:
    a = analysis(manifest((150, 100), extra="  trackInterfaces: [eth1]\n"))
    failed = row(a, "eth1 down on n1")
    assert failed.after == ("n2",) and "n1 in FAULT (tracked interface eth1 down)" in failed.why
    assert row(a, "eth1 down on n2").after == ("n1",)


def test_sync_group_members_share_weights_and_faults() -> None:
    outside = manifest((150, 100), probe(-60), name="outside", extra="  syncGroup: edge\n")
    inside = manifest((150, 100), probe(0, "inner"), name="inside", vrid=52,
                      extra="  syncGroup: edge\n")  # fmt: skip
    found = {a.instance: a for a in analyses(outside + "---\n" + inside)}
    a = found["default/inside/ipv4"]
    # outside's weighted probe moves inside too (keepalived's group track_script) ...
    moved = row(a, "probe hc of default/outside fails on n1")
    assert moved.after == ("n2",) and "150 - 60 (default/outside/hc) = 90" in moved.why
    # ... and inside's weight-0 probe puts outside in FAULT through the group.
    b = found["default/outside/ipv4"]
    fault = row(b, "probe inner of default/inside fails on n1")
    assert fault.after == ("n2",) and "probe default/inside/inner failing" in fault.why
    assert not any(f.code == "SyncGroupSplit" for x in found.values() for f in x.findings)
    assert any("sync group default/edge" in s for s in a.assumptions)


def test_a_dual_stack_members_probe_weighs_once_in_its_sync_group() -> None:
    # Two instances (IPv4, IPv6) run the VirtualIP's one probe: its weight counts once.
    web = manifest((150, 100), probe(-60), peers=False, extra="  syncGroup: edge\n")
    web = web.replace("[192.168.77.100/24]", '[192.168.77.100/24, "fd00:77::100/64"]')
    api = manifest((150, 100), name="api", vrid=52, peers=False, extra="  syncGroup: edge\n")
    found = {a.instance: a for a in analyses(web + "---\n" + api)}
    assert set(found) == {"default/web/ipv4", "default/web/ipv6", "default/api/ipv4"}
    assert "n1 150 - 60 (hc) = 90:" in row(found["default/web/ipv6"], "probe hc fails on n1").why
    moved = row(found["default/api/ipv4"], "probe hc of default/web fails on n1")
    assert "n1 150 - 60 (default/web/hc) = 90:" in moved.why


def test_sync_group_members_that_prefer_different_nodes_are_flagged() -> None:
    one = manifest((150, 100), name="one", extra="  syncGroup: edge\n")
    two = manifest((100, 150), name="two", vrid=52, extra="  syncGroup: edge\n")
    for a in analyses(one + "---\n" + two):
        split = next(f for f in a.findings if f.code == "SyncGroupSplit")
        assert split.severity == "warning" and "would not agree" in split.message


def test_dual_stack_tables_are_shown_once_when_they_agree() -> None:
    text = manifest((150, 100), probe(-60)).replace(
        "addresses: [192.168.77.100/24]", 'addresses: [192.168.77.100/24, "fd00:77::100/64"]'
    ).replace("  peers:\n", '  peers:\n    - {nodeName: n1, address: "fd00:77::11"}\n'
              '    - {nodeName: n2, address: "fd00:77::12"}\n')  # fmt: skip
    found = analyses(text)
    assert [a.instance for a in found] == ["default/web/ipv4", "default/web/ipv6"]
    shown = whatif.format_text(found)
    assert "default/web/ipv4+ipv6: VRID 51" in shown and "default/web/ipv6:" not in shown


def test_pairs_are_left_out_beyond_the_limit() -> None:
    probes = "".join(probe(-10, f"p{i}") for i in range(4))
    a = analysis(manifest((100, 90, 80), probes))
    assert a.pairs == () and a.pairs_omitted == 66  # 12 probe failures
    assert "66 both-fail cases not listed" in whatif.format_text([a])


def test_a_unicast_virtualip_runs_only_on_its_peers() -> None:
    text = manifest((150, 100), extra="  unicast: true\n")
    configs, _ = whatif.resolve(load_manifests(text), ["n1", "n2", "n3"])
    assert configs["n3"] == []
    (a,) = whatif.analyse_all(configs)
    assert [s.node for s in a.steady] == ["n1", "n2"]


def test_standalone_label_selectors_are_said_to_match_nothing() -> None:
    vips = load_manifests((ROOT / "examples" / "dual-stack.yaml").read_text())
    _, notes = whatif.resolve(vips, whatif.named_nodes(vips))
    assert notes == [
        "default/api: spec.nodePriorities[0] selects nodes by labels; a standalone daemon has "
        "no node labels, so it applies to no node here"
    ]


def test_json_carries_the_table_and_the_findings() -> None:
    data = whatif.as_json(analyses(manifest((100, 70), probe(-20))))
    (a,) = data["analyses"]
    assert a["holder"] == ["n1"] and a["preempt"] == {"mode": "Always"}
    first = a["failures"][0]
    assert first["failures"] == [{"kind": "probe", "node": "n1", "name": "hc"}]
    assert (first["before"], first["after"], first["moved"]) == (["n1"], ["n1"], False)
    assert a["findings"][0]["code"] == "NeverMoves"
    assert json.loads(json.dumps(data)) == data


def test_failures_read_as_sentences() -> None:
    assert str(Failure("n1", "probe", "hc")) == "probe hc fails on n1"
    assert (
        str(Failure("n1", "probe", "x", "default/other")) == "probe x of default/other fails on n1"
    )
    assert str(Failure("n1", "interface", "eth1")) == "eth1 down on n1"
    assert str(Failure("n1", "node")) == "n1 down"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_explained(path: Path) -> None:
    found = analyses(path.read_text())
    assert found and all(a.singles for a in found)
    assert all(len(a.holder) == 1 for a in found), [a.holder for a in found]


def test_tracked_haproxy_example_says_what_its_comment_says() -> None:
    (a,) = analyses((ROOT / "examples" / "tracked-haproxy.yaml").read_text())
    assert row(a, "probe haproxy-tls fails on node-a").after == ("node-b",)
    # "if node-b is failing too, the VIP stays with the healthier node"
    both = row(a, "probe haproxy-tls fails on node-a + probe haproxy-tls fails on node-b")
    assert both.after == ("node-a",)
    assert a.warnings == ()


# --- the command line --------------------------------------------------------------------------


def vrrpd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vrrpd", *args], capture_output=True, text=True, cwd=ROOT,
        check=False, timeout=60,
    )  # fmt: skip


def test_explain_prints_the_table_and_json(tmp_path: Path) -> None:
    path = tmp_path / "vip.yaml"
    path.write_text(manifest((100, 70), probe(-20)))
    text = vrrpd("explain", str(path))
    assert text.returncode == 0, text.stderr
    assert "FAILURE" in text.stdout and "ONCE CLEARED" in text.stdout
    assert "warning: probe hc (weight -20) failing never moves the VIP" in text.stdout
    data = json.loads(vrrpd("explain", str(path), "--output", "json").stdout)
    assert data["analyses"][0]["findings"][0]["code"] == "NeverMoves"


def test_explain_takes_nodes_the_file_does_not_name(tmp_path: Path) -> None:
    path = tmp_path / "vip.yaml"
    path.write_text(manifest((150,), probe(-60), peers=False))
    result = vrrpd("explain", str(path), "--node", "n2")
    assert result.returncode == 0
    assert "n1 150 - 60 (hc) = 90: below n2's 100" in result.stdout
    bare = tmp_path / "bare.yaml"
    bare.write_text(manifest((), peers=False).replace("  nodePriorities:\n\n", ""))
    refused = vrrpd("explain", str(bare))
    assert refused.returncode == 2 and "--node NAME" in refused.stderr


def test_validate_warns_but_keeps_its_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "vip.yaml"
    path.write_text(manifest((100, 70), probe(-20)))
    result = vrrpd("validate", str(path))
    assert result.returncode == 0
    assert result.stdout == f"{path}: valid: 1 VirtualIP(s), 1 address(es)\n"
    assert f"{path}: warning: default/web/ipv4: probe hc (weight -20)" in result.stderr
    assert f"`vrrpd explain {path}`" in result.stderr
    clean = vrrpd("validate", str(ROOT / "examples" / "tracked-haproxy.yaml"))
    assert clean.returncode == 0 and clean.stderr == ""


KEEPALIVED = """\
vrrp_script chk_haproxy {
    script "killall -0 haproxy"
    interval 2
    weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        192.168.1.100/24
    }
    track_script {
        chk_haproxy
    }
}
"""


def test_convert_warns_about_the_weight_trap(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(KEEPALIVED)
    result = vrrpd("convert", str(conf), "--node", "lb-1")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert (
        f"{conf}: info: what-if: other-node stands for the nodes whose keepalived.conf was "
        "not converted: they run at spec.priority, as this YAML makes them"
    ) in lines
    assert (
        f"{conf}: warning: what-if: default/vi-1/ipv4: probe chk-haproxy (weight -20) failing "
        "never moves the VIP: lb-1 goes from 150 to 150 - 20 (chk-haproxy) = 130, still above "
        "other-node's 100; weight -51 would move it (or weight 0: FAULT)"
    ) in lines
