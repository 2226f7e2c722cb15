from desktop_ai.cli import main

raise SystemExit(main())
