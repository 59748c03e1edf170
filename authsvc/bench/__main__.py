import sys

from authsvc.bench import main

sys.exit(main())
