"""The syncs clause's judge, on traces written out by hand (no strace needed)."""

from transfercore.testing.strace import missing_syncs, parse

D = "/s"
BEGIN, END = "/.k/begin", "/.k/end"

OPEN = '10 openat(AT_FDCWD</>, "/s/.o.tcpart", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3</s/.o.tcpart>'
WRITE = '10 pwrite64(3</s/.o.tcpart>, ""..., 16384, 0) = 16384'
BEGIN_CALL = '10 faccessat2(AT_FDCWD</>, "/.k/begin", F_OK, 0) = -1 ENOENT (No such file or directory)'
END_CALL = '10 access("/.k/end", F_OK) = -1 ENOENT (No such file or directory)'
SIDECAR = [
    '10 openat(AT_FDCWD</>, "/s/.o.marker.tmp", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 4</s/.o.marker.tmp>',
    '10 write(4</s/.o.marker.tmp>, ""..., 60) = 60',
    '10 fsync(4</s/.o.marker.tmp>) = 0',
    '10 rename("/s/.o.marker.tmp", "/s/.o.marker") = 0',
    '10 openat(AT_FDCWD</>, "/s", O_RDONLY|O_DIRECTORY|O_CLOEXEC) = 5</s>',
    '10 fsync(5</s>) = 0',
]


def judge(*lines):
    return missing_syncs(parse("\n".join(lines)), D, BEGIN, END)


def test_an_honest_durable_call_leaves_nothing_unsynced():
    assert judge(OPEN, WRITE, BEGIN_CALL, '10 fdatasync(3</s/.o.tcpart>) = 0', *SIDECAR, END_CALL) == []


def test_a_skipped_fdatasync_of_the_data_file_is_named():
    (problem,) = judge(OPEN, WRITE, BEGIN_CALL, *SIDECAR, END_CALL)
    assert problem == ".o.tcpart was written but not fsynced/fdatasynced before durable() returned"


def test_a_sync_before_the_last_write_does_not_count_nor_does_sync_file_range():
    late = '10 pwrite64(3</s/.o.tcpart>, ""..., 16384, 16384) = 16384'
    range_only = '10 sync_file_range(3</s/.o.tcpart>, 0, 0, SYNC_FILE_RANGE_WRITE) = 0'
    problems = judge(OPEN, WRITE, '10 fdatasync(3</s/.o.tcpart>) = 0', late, range_only, BEGIN_CALL, *SIDECAR, END_CALL)
    assert problems == [".o.tcpart was written but not fsynced/fdatasynced before durable() returned"]


def test_a_new_name_needs_its_directory_synced():
    no_dir_sync = [line for line in SIDECAR if "fsync(5" not in line]
    problems = judge(OPEN, WRITE, BEGIN_CALL, '10 fdatasync(3</s/.o.tcpart>) = 0', *no_dir_sync, END_CALL)
    assert problems == ["the directory /s was not fsynced after a new name appeared in it"]


def test_split_lines_of_threads_syncfs_and_o_dsync_are_understood():
    lines = [
        OPEN.replace("O_RDWR", "O_RDWR|O_DSYNC"),
        '11 pwrite64(3</s/.o.tcpart>, ""..., 16384, 0 <unfinished ...>',
        '10 getpid() = 10',
        '11 <... pwrite64 resumed>) = 16384',
        BEGIN_CALL,
        '10 syncfs(3</s/.o.tcpart>) = 0',
        END_CALL,
    ]
    calls = parse("\n".join(lines))
    assert [c.name for c in calls][:3] == ["openat", "getpid", "pwrite64"]  # in the order they completed
    assert missing_syncs(calls, D, BEGIN, END) == []


def test_a_trace_without_the_brackets_is_reported():
    assert "does not show the durable() call" in judge(OPEN, WRITE)[0]


def test_the_files_written_are_named():
    from transfercore.testing.strace import written_files

    calls = parse("\n".join([OPEN, WRITE, '10 write(1<pipe:[77]>, ""..., 20) = 20', *SIDECAR]))
    assert written_files(calls, D) == {"/s/.o.tcpart", "/s/.o.marker.tmp"}
