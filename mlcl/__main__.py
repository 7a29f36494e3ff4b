from mlcl.cli import main

raise SystemExit(main())
