// The oracle behind java_hashmap_orders.json: JDK 17 java.util.HashMap iteration orders.
// javac JavaHashMapOrders.java && java JavaHashMapOrders < cases.tsv
import java.io.*;
import java.util.*;

// Reads cases, one per line: KIND<TAB>arg<TAB>key1<TAB>key2...  (keys escaped: \t \n \\ as \\t \\n \\\\)
// Prints the iteration order of the java.util.HashMap each builds, keys tab-separated.
public class JavaHashMapOrders {
    static String unesc(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char d = s.charAt(++i);
                if (d == 't') b.append('\t'); else if (d == 'n') b.append('\n');
                else if (d == 'u') { b.append((char) Integer.parseInt(s.substring(i + 1, i + 5), 16)); i += 4; }
                else b.append(d);
            } else b.append(c);
        }
        return b.toString();
    }
    static String esc(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '\\') b.append("\\\\"); else if (c == '\t') b.append("\\t");
            else if (c == '\n') b.append("\\n");
            else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.toString();
    }
    public static void main(String[] a) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            String[] p = line.split("\t", -1);
            String kind = p[0];
            int arg = Integer.parseInt(p[1]);
            List<String> keys = new ArrayList<>();
            for (int i = 2; i < p.length; i++) keys.add(unesc(p[i]));
            Collection<?> order;
            if (kind.equals("str")) {          // HashMap(arg) (arg < 0: HashMap()) filled in order
                Map<String, String> m = arg < 0 ? new HashMap<>() : new HashMap<>(arg);
                for (String k : keys) m.put(k, k);
                order = m.keySet();
            } else if (kind.equals("int")) {
                Map<Integer, Integer> m = arg < 0 ? new HashMap<>() : new HashMap<>(arg);
                for (String k : keys) m.put(Integer.parseInt(k), 0);
                order = m.keySet();
            } else if (kind.equals("putremove")) {   // keys prefixed + or -
                Map<String, String> m = new HashMap<>();
                for (String k : keys) { if (k.startsWith("+")) m.put(k.substring(1), ""); else m.remove(k.substring(1)); }
                order = m.keySet();
            } else if (kind.equals("copy")) {        // a HashMap() filled, then new HashMap<>(it)
                Map<String, String> m = new HashMap<>();
                for (String k : keys) m.put(k, k);
                order = new HashMap<>(m).keySet();
            } else if (kind.equals("custom")) {      // keys in encoded (sorted) order, "v" among them
                Map<String, String> dec = new HashMap<>();
                for (String k : keys) dec.put(k, k);
                dec.remove("v");                      // Metadata(String)
                Map<String, String> asMap = new HashMap<>();
                for (Map.Entry<String, String> e : dec.entrySet()) asMap.put(e.getKey(), e.getValue());
                Map<String, String> custom = new HashMap<>(8);  // CustomMetadata
                for (Map.Entry<String, String> e : asMap.entrySet()) custom.put(e.getKey(), e.getValue());
                order = custom.keySet();
            } else if (kind.equals("contact")) {     // "key=value" pairs; empty values dropped
                Map<String, Object> req = new HashMap<>();
                for (String kv : keys) { int i = kv.indexOf('='); req.put(kv.substring(0, i), kv.substring(i + 1)); }
                Map<String, String> parsed = new HashMap<>();
                for (Map.Entry<String, Object> e : req.entrySet()) {
                    String v = (String) e.getValue();
                    if (!e.getKey().trim().isEmpty() && v != null && !v.isEmpty()) parsed.put(e.getKey(), v);
                }
                order = parsed.keySet();
            } else { throw new IllegalArgumentException(kind); }
            StringBuilder b = new StringBuilder(order.size() + ":");
            boolean first = true; for (Object k : order) { if (!first) b.append((char) 9); first = false; b.append(esc(k.toString())); }
            out.println(b);
        }
    }
}
