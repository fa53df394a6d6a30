echo "from a file"
