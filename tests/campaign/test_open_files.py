"""A tree copy within the process's open-file limit: each batch holds its
files' descriptors until its durable point, so batches are sized to fit."""

import resource
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    from transfercore.campaign import CampaignStore, TreeCopy
    from transfercore.campaign.runner import TreeOptions
    src, dst, journal = sys.argv[1:4]
    with CampaignStore(journal) as store:
        result = TreeCopy("posix://" + src, "posix://" + dst, TreeOptions(), store).run()
    print(result.copied, len(result.failed), result.failed[:1])
""")


def _limited(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return apply


def test_a_tree_copy_under_a_low_open_file_limit_copies_every_file(tmp_path):
    """A program embedding the copy with a low limit (here 200, with eight
    workers) gets every file copied, not "Too many open files" for some."""
    src = tmp_path / "src"
    for d in ("a", "b"):
        (src / d).mkdir(parents=True)
        for i in range(400):
            (src / d / f"f{i:03d}").write_bytes(b"%d" % i)
    script = tmp_path / "tree_script.py"  # (not copy.py: the standard library has a copy module)
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(src), str(tmp_path / "dst"), str(tmp_path / "j.db")],
                         capture_output=True, text=True, timeout=120, preexec_fn=_limited(200))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["800", "0"], out.stdout
    for d in ("a", "b"):
        for i in range(400):
            assert (tmp_path / "dst" / d / f"f{i:03d}").read_bytes() == b"%d" % i


def test_batches_are_sized_to_the_limit_of_this_process():
    from transfercore.campaign.runner import RESERVED_DESCRIPTORS, files_per_batch_open

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    got = files_per_batch_open(8)
    if soft == resource.RLIM_INFINITY:
        assert got is None
    else:
        assert got == max(1, (soft - RESERVED_DESCRIPTORS) // 16)
        # two descriptors a file at most, for every worker, within the limit
        assert 2 * 8 * got + RESERVED_DESCRIPTORS <= max(soft, 2 * 8 + RESERVED_DESCRIPTORS)
