from transfercore.errors import TransferCoreError
from transfercore.gridftp.errors import BadArgument, BadBlockHeader, GridFTPError, RemoteProtocolError


def test_errors_join_the_project_tree():
    for cls in (BadArgument, BadBlockHeader, RemoteProtocolError):
        assert issubclass(cls, GridFTPError) and issubclass(cls, TransferCoreError)
    assert issubclass(BadBlockHeader, ValueError)
