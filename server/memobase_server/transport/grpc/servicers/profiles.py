"""ProfileService. Profiles and context are read from the memory the pipeline builds."""

from __future__ import annotations

from memobase_server.gen.memobase.v1 import profile_pb2_grpc
from memobase_server.transport.grpc.servicers.pending import pending

_PROFILES = "profile reads and writes (issue 6)"


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    GetProfile = pending("GetProfile", _PROFILES)
    AddProfile = pending("AddProfile", _PROFILES)
    UpdateProfile = pending("UpdateProfile", _PROFILES)
    DeleteProfile = pending("DeleteProfile", _PROFILES)
    GetContext = pending("GetContext", "context prompts (issue 6)")
