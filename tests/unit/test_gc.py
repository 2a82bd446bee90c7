"""What gc calls garbage, decided from facts alone (no libvirt needed)."""

from __future__ import annotations

from labctl.usecases.gc import Facts, classify

MINE = "/data/mine"
OTHER = "/data/other"


def facts(**changes) -> Facts:
    base = dict(
        data_dir=MINE,
        domains={"web.a": ("web", MINE)},
        networks={"web.lan": ("web", MINE)},
        volumes=["web.a.qcow2", "web.a.seed.iso", "base-debian-12-aaaa.qcow2",
                 "base-debian-12-aaaa.qcow2.complete", "base-debian-12-aaaa.vmlinuz"],
        used_paths={"/pool/base-debian-12-aaaa.qcow2"},
        volume_paths={"base-debian-12-aaaa.qcow2": "/pool/base-debian-12-aaaa.qcow2"},
        current_bases=set(),
        lab_dirs=["web"],
        labs_with_keys={MINE: {"web"}},
    )
    base.update(changes)
    return Facts(**base)


def test_a_whole_usable_lab_is_not_garbage():
    assert classify(facts()) == []


def test_lab_whose_keys_are_gone_goes_whole():
    found = classify(facts(labs_with_keys={MINE: set()}))
    assert [(g.kind, g.name) for g in found] == [
        ("domain", "web.a"), ("network", "web.lan"), ("files", "web")]
    assert "keys are gone" in found[0].reason


def test_volumes_of_a_vm_never_defined():
    found = classify(facts(volumes=["web.b.qcow2", "web.a.qcow2"]))
    assert [(g.kind, g.name, g.lab) for g in found] == [("volume", "web.b.qcow2", "web")]


def test_old_base_goes_but_used_or_current_base_stays():
    old = ["base-debian-12-bbbb.qcow2", "base-debian-12-bbbb.qcow2.complete",
           "base-debian-12-bbbb.vmlinuz"]
    cur = ["base-debian-12-cccc.qcow2"]
    found = classify(facts(volumes=facts().volumes + old + cur,
                           current_bases={"base-debian-12-cccc.qcow2"}))
    assert [(g.kind, g.name) for g in found] == [("base", "base-debian-12-bbbb")]
    assert "3 volumes" in found[0].reason


def test_files_of_a_lab_libvirt_no_longer_has():
    found = classify(facts(lab_dirs=["web", "gone"]))
    assert [(g.kind, g.name) for g in found] == [("files", "gone")]


def test_files_of_a_copy_on_another_host_are_not_this_hosts_garbage():
    """A class over two hosts: gc of one must not take the keys of the copies
    the other holds (libvirt here has nothing of them, by design)."""
    here, there = "qemu:///system", "qemu+ssh://lab@h2/system"
    found = classify(facts(domains={}, networks={}, volumes=[], lab_dirs=["web-1", "web-2"],
                           labs_with_keys={MINE: {"web-1", "web-2"}}, uri=here,
                           placed={"web-1": here, "web-2": there}))
    assert [(g.kind, g.name) for g in found] == [("files", "web-1")]


def test_another_data_dirs_lab_is_left_alone_while_that_dir_has_it():
    theirs = {"class.x": ("class", OTHER)}
    assert classify(facts(domains={**facts().domains, **theirs},
                          labs_with_keys={MINE: {"web"}, OTHER: {"class"}})) == []
    gone = classify(facts(domains={**facts().domains, **theirs}))  # OTHER deleted
    assert [(g.kind, g.name) for g in gone] == [("domain", "class.x")]
    assert OTHER in gone[0].reason


def test_objects_made_before_metadata_named_a_data_dir_count_as_ours():
    assert classify(facts(domains={"web.a": ("web", "")})) == []


def test_templates_of_a_gone_image_and_unfinished_template_volumes():
    from pathlib import Path

    from labctl.usecases.template_store import volume_name

    mine = [volume_name(Path(MINE), k * 8) for k in ("a", "b", "c")]
    theirs = volume_name(Path("/elsewhere/data"), "d" * 16)  # another data dir's
    legacy = "labctl-template-" + "e" * 16 + ".qcow2"  # before volumes carried a tag
    found = classify(facts(
        volumes=["web.a.qcow2", *mine, theirs, legacy],
        templates={"aaaa": (mine[0], "digest-now"), "bbbb": (mine[1], "digest-old")},
        current_digests=frozenset({"digest-now"})))
    assert {(g.kind, g.name) for g in found} == {
        ("template", "bbbb"), ("volume", mine[2]), ("volume", legacy)}


def test_a_lab_of_which_only_labelled_objects_are_left_is_garbage():
    """A cloud's router or floating IP outliving the lab's VMs and networks (a
    killed down) is found by its label; a lab with VMs or networks is not."""
    found = classify(facts(labelled=frozenset({"web", "gone"})))
    assert [(g.kind, g.name, g.lab) for g in found] == [("leftovers", "gone", "gone")]
    assert "only objects labelled with it" in found[0].reason


def test_a_clouds_gc_leaves_the_files_of_labs_recorded_on_no_host():
    unplaced = facts(domains={}, networks={}, lab_dirs=["old"], placed={}, volumes=[])
    assert [g.kind for g in classify(unplaced)] == ["files"]  # libvirt's to judge
    on_cloud = facts(domains={}, networks={}, lab_dirs=["old"], placed={}, volumes=[],
                     uri="openstack:uni")
    assert classify(on_cloud) == []


def test_each_hosts_templates_are_its_own_another_hosts_gc_neither_lists_nor_removes_them(
        tmp_path, monkeypatch):
    """A template lives on the host it was built on: gc of another host found
    the data dir's template records there, and would have removed them while
    their volumes stayed where they are."""
    from labctl.images.cache import ImageCache
    from labctl.usecases.gc import gather
    from labctl.usecases.template_store import Template, TemplateStore

    from .fake_backend import FakeBackend

    store = TemplateStore(tmp_path)
    store.put(Template("k" * 16, "debian-12", "old", "labctl-template-x.qcow2",
                       "labctl", "", "", "", 1.0))
    store.put(Template("r" * 16, "debian-12", "old", "labctl-template-r.qcow2",
                       "labctl", "", "", "", 1.0, host="qemu+ssh://elsewhere/system"))
    monkeypatch.setattr(FakeBackend, "is_local",
                        property(lambda self: self.uri.startswith("fake:")))
    here, remote = FakeBackend(), FakeBackend(uri="qemu+ssh://elsewhere/system")
    third = FakeBackend(uri="qemu+ssh://third/system")
    images = ImageCache(tmp_path / "images")
    assert gather(here, tmp_path, images).templates == {
        "k" * 16: ("labctl-template-x.qcow2", "old")}
    assert gather(remote, tmp_path, images).templates == {
        "r" * 16: ("labctl-template-r.qcow2", "old")}
    assert gather(third, tmp_path, images).templates == {}
    assert [g.kind for g in classify(gather(third, tmp_path, images))] == []
    assert [(g.kind, g.name) for g in classify(gather(remote, tmp_path, images))] == [
        ("template", "r" * 16)]
    assert [g.kind for g in classify(gather(here, tmp_path, images))] == ["template"]
