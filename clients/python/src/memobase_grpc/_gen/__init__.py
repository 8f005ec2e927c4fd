# Copied from memobase_server.gen by clients/python/scripts/sync_stubs.py. DO NOT EDIT!
