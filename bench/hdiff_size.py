"""Prints the size of an HDiffPatch (LZMA2) delta from OLD to NEW. Usage: hdiff_size.py OLD NEW"""
import sys

import hdiffpatch

old = open(sys.argv[1], "rb").read()
new = open(sys.argv[2], "rb").read()
print(len(hdiffpatch.diff(old, new, hdiffpatch.COMPRESSION_LZMA2, validate=False)))
