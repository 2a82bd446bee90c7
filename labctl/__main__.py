from labctl.entry import main

main()
