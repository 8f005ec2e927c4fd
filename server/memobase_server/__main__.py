from memobase_server.cli import main

raise SystemExit(main())
