from stabbench.cli import main

main()
