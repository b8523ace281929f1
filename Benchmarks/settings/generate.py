"""Writes a large TOML document with every value type: generate.py PATH TABLES"""
import sys

path, tables = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    out.write('title = "generated"\n')
    for i in range(tables):
        out.write(f"\n[service_{i}]\n")
        out.write(f'name = "service number {i} with a \\"quoted\\" part and \\u00e9"\n')
        out.write(f"port = {1024 + i % 60000}\nratio = {i / 7:.6f}\nenabled = {'true' if i % 2 else 'false'}\n")
        out.write(f"hex = 0x{i:x}\nbig = 1_000_{i % 1000:03d}\n")
        out.write(f"started = 1979-05-27T07:{i % 60:02d}:00Z\nday = 2024-02-{1 + i % 28:02d}\n")
        out.write(f"tags = [\"a\", 'b', \"c{i}\"]\nmatrix = [[1, 2], [3, {i}]]\n")
        out.write(f"inline = {{ host = \"h{i}\", port = {i}, nested = {{ deep = true }} }}\n")
        out.write("text = '''\nmulti-line literal\nwith several lines\n'''\n")
        out.write(f"[[service_{i}.routes]]\npath = \"/r/{i}\"\nweight = {i % 10}\n")
