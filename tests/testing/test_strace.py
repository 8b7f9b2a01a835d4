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
    return missing_syncs(parse("\n".join(lines)), BEGIN, END, root=D)


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
    assert problems == ["the directory /s was not fsynced after a new name appeared in it (.o.marker, .o.tcpart)"]


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
    assert missing_syncs(calls, BEGIN, END) == []


def test_a_trace_without_the_brackets_is_reported():
    assert "does not show the durable() call" in judge(OPEN, WRITE)[0]


def test_the_files_written_are_named():
    from transfercore.testing.strace import written_files

    calls = parse("\n".join([OPEN, WRITE, '10 write(1<pipe:[77]>, ""..., 20) = 20', *SIDECAR]))
    assert written_files(calls) == {"/s/.o.tcpart", "/s/.o.marker.tmp"}


SUB_OPEN = '10 openat(AT_FDCWD</>, "/s/.store/o.part", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3</s/.store/o.part>'
SUB_WRITE = '10 pwrite64(3</s/.store/o.part>, ""..., 16384, 0) = 16384'
SUB_MKDIR = '10 mkdirat(AT_FDCWD</s>, ".store", 0777) = 0'
SUB_DIR_SYNC = ['10 openat(AT_FDCWD</>, "/s/.store", O_RDONLY|O_DIRECTORY|O_CLOEXEC) = 6</s/.store>',
                '10 fsync(6</s/.store>) = 0']


def test_a_data_file_in_a_subdirectory_is_judged_like_one_beside_the_object():
    (problem,) = judge(SUB_MKDIR, SUB_OPEN, SUB_WRITE, BEGIN_CALL, *SUB_DIR_SYNC, *SIDECAR, END_CALL)
    assert problem == ".store/o.part was written but not fsynced/fdatasynced before durable() returned"
    synced = judge(SUB_MKDIR, SUB_OPEN, SUB_WRITE, BEGIN_CALL, '10 fdatasync(3</s/.store/o.part>) = 0',
                   *SUB_DIR_SYNC, *SIDECAR, END_CALL)
    assert synced == []


def test_a_new_subdirectory_and_the_names_in_it_need_their_parents_synced():
    problems = judge(SUB_MKDIR, SUB_OPEN, SUB_WRITE, BEGIN_CALL, '10 fdatasync(3</s/.store/o.part>) = 0',
                     *SIDECAR, END_CALL)
    assert problems == ["the directory .store was not fsynced after a new name appeared in it (o.part)"]
    no_parent = [line for line in SIDECAR if "fsync(5" not in line]
    problems = judge(SUB_MKDIR, SUB_OPEN, SUB_WRITE, BEGIN_CALL, '10 fdatasync(3</s/.store/o.part>) = 0',
                     *SUB_DIR_SYNC, *no_parent, END_CALL)
    assert problems == ["the directory /s was not fsynced after a new name appeared in it (.o.marker, .store)"]


def test_files_anywhere_count_but_pipes_devices_and_files_before_the_writer_do_not():
    elsewhere = ['10 openat(AT_FDCWD</>, "/var/cache/d/blob", O_WRONLY|O_CREAT|O_APPEND, 0666) = 7</var/cache/d/blob>',
                 '10 write(7</var/cache/d/blob>, ""..., 10) = 10']
    noise = ['10 write(1<pipe:[77]>, ""..., 20) = 20', '10 write(2</dev/pts/0>, ""..., 20) = 20']
    since = '10 access("/.k/open", F_OK) = -1 ENOENT (No such file or directory)'
    before = ['10 openat(AT_FDCWD</>, "/s/lock", O_WRONLY|O_CREAT, 0666) = 8</s/lock>', '10 write(8</s/lock>, ""..., 1) = 1']
    lines = [*before, since, OPEN, WRITE, *elsewhere, *noise, BEGIN_CALL, '10 fdatasync(3</s/.o.tcpart>) = 0',
             *SIDECAR, END_CALL]
    problems = missing_syncs(parse("\n".join(lines)), BEGIN, END, since="/.k/open", root=D)
    assert problems == ["/var/cache/d/blob was written but not fsynced/fdatasynced before durable() returned",
                        "the directory /var/cache/d was not fsynced after a new name appeared in it (blob)"]


def test_a_rename_carries_the_sync_and_a_removed_file_is_not_judged():
    lines = [
        '10 openat(AT_FDCWD</s>, "t.tmp", O_WRONLY|O_CREAT|O_EXCL, 0666) = 4</s/t.tmp>',
        '10 write(4</s/t.tmp>, ""..., 60) = 60',
        '10 renameat2(AT_FDCWD</s>, "t.tmp", AT_FDCWD</s>, "t", 0) = 0',
        '10 fsync(4</s/t>) = 0',
        '10 openat(AT_FDCWD</>, "/s/scratch", O_WRONLY|O_CREAT, 0666) = 9</s/scratch>',
        '10 write(9</s/scratch>, ""..., 60) = 60',
        '10 unlink("/s/scratch") = 0',
        '10 write(9</s/scratch>(deleted), ""..., 60) = 60',
        BEGIN_CALL,
        '10 openat(AT_FDCWD</>, "/s", O_RDONLY|O_DIRECTORY|O_CLOEXEC) = 5</s>',
        '10 fsync(5</s>) = 0',
        END_CALL,
    ]
    assert judge(*lines) == []
    unsynced = [line for line in lines if "fsync(4" not in line]
    assert judge(*unsynced) == ["t was written but not fsynced/fdatasynced before durable() returned"]
