from rawws.cli import main

raise SystemExit(main())
